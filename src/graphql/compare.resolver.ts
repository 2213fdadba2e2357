import { Arg, Ctx, Extensions, ID, Query, Resolver } from 'type-graphql';
import { RUNS_VERSIONED } from '../core/history/runs-versioned';
import { injectable } from 'tsyringe';
import { ComparisonService } from '../core/history/comparison.service';
import type { CondenseContext } from './context';
import { Comparison, Leaderboard, LeaderboardInput } from './compare.types';

@injectable()
@Resolver()
export class CompareResolver {
  constructor(private readonly comparison: ComparisonService) {}

  @Extensions(RUNS_VERSIONED)
  @Query(() => Comparison, { description: 'Side-by-side table of runs you may read (≤ 50): signature, differing settings, accuracy, cost, wall times' })
  compareRuns(@Arg('ids', () => [ID]) ids: string[], @Ctx() ctx: CondenseContext): Promise<Comparison> {
    return this.comparison.compareRuns(ctx.auth, ids);
  }

  @Extensions(RUNS_VERSIONED)
  @Query(() => Leaderboard, { description: 'Succeeded runs ranked by a metric under constraints, with the Pareto front against a cost' })
  leaderboard(@Arg('input', () => LeaderboardInput) input: LeaderboardInput, @Ctx() ctx: CondenseContext): Promise<Leaderboard> {
    return this.comparison.leaderboard(ctx.auth, input);
  }
}
