import express, { type Router } from 'express';
import type { DependencyContainer } from 'tsyringe';
import { AuthService } from '../core/auth/auth.service';
import { bearerToken } from '../core/auth/tokens';
import { ForbiddenError, NotFoundError, UnauthenticatedError } from '../core/errors';
import { ArtifactAccessService } from '../core/history/artifact-access.service';
import type { Logger } from '../core/logging/logger';

/**
 * GET /artifacts/:id serves an image artifact's bytes with its media type. Auth is the same bearer
 * token as the GraphQL API ("Authorization: Bearer <token>"; no signed URLs), and visibility is that
 * of runs: the caller's team's projects and projects shared for comparison.
 */
export function artifactRoutes(appContainer: DependencyContainer, log: Logger): Router {
  const router = express.Router();
  const auth = appContainer.resolve(AuthService);
  const access = appContainer.resolve(ArtifactAccessService);
  const fail = (res: express.Response, status: number, code: string, message: string) => {
    res.status(status).json({ error: { code, message } });
  };
  router.get('/artifacts/:id', async (req, res) => {
    try {
      const token = bearerToken(req.headers.authorization);
      if (token === undefined) return fail(res, 401, 'UNAUTHENTICATED', 'send "Authorization: Bearer <token>" (the same token as for the GraphQL API)');
      const caller = await auth.authenticate(token);
      const { artifact, path } = await access.readableArtifact(caller, String(req.params.id));
      res.setHeader('Content-Type', artifact.mediaType);
      res.setHeader('Content-Length', String(artifact.bytes));
      res.setHeader('Cache-Control', 'private, max-age=3600, immutable');
      res.setHeader('ETag', `"${artifact.contentHash}"`);
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.sendFile(path, { dotfiles: 'allow', headers: { 'Content-Type': artifact.mediaType } });
    } catch (error) {
      if (error instanceof UnauthenticatedError) return fail(res, 401, 'UNAUTHENTICATED', error.message);
      if (error instanceof ForbiddenError) return fail(res, 403, 'FORBIDDEN', error.message);
      if (error instanceof NotFoundError) return fail(res, 404, 'NOT_FOUND', error.message);
      log.error({ err: error }, 'could not serve an artifact');
      fail(res, 500, 'INTERNAL_SERVER_ERROR', 'could not serve the artifact; the server log has the details');
    }
  });
  return router;
}
