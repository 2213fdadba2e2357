import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Teams, members, tokens, projects, plugin enablement, models, datasets, pipelines, runs, stages, metrics, artifacts. */
export class Initial1764000000000 implements MigrationInterface {
  name = 'Initial1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE teams (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        is_admin_team boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT teams_name_unique UNIQUE (name),
        CONSTRAINT teams_name_not_blank CHECK (length(btrim(name)) > 0)
      )`);
    await q.query(`CREATE UNIQUE INDEX teams_single_admin_team ON teams (is_admin_team) WHERE is_admin_team`);
    await q.query(`
      CREATE TABLE members (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
        name text NOT NULL,
        role text NOT NULL CHECK (role IN ('admin', 'member')),
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT members_team_name_unique UNIQUE (team_id, name)
      )`);
    await q.query(`
      CREATE TABLE api_tokens (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        member_id uuid NOT NULL REFERENCES members(id) ON DELETE CASCADE,
        token_hash text NOT NULL,
        prefix text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        revoked_at timestamptz,
        CONSTRAINT api_tokens_hash_unique UNIQUE (token_hash)
      )`);
    await q.query(`CREATE INDEX api_tokens_member ON api_tokens (member_id)`);
    await q.query(`
      CREATE TABLE projects (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
        name text NOT NULL,
        shared_for_comparison boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT projects_team_name_unique UNIQUE (team_id, name)
      )`);
    await q.query(`
      CREATE TABLE project_plugins (
        project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        plugin text NOT NULL,
        enabled boolean NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (project_id, plugin)
      )`);
    await q.query(`
      CREATE TABLE artifacts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        kind text NOT NULL,
        content_hash text NOT NULL,
        bytes integer NOT NULL CHECK (bytes >= 0),
        storage_path text NOT NULL,
        media_type text NOT NULL,
        run_id uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT artifacts_kind_hash_unique UNIQUE (kind, content_hash)
      )`);
    await q.query(`
      CREATE TABLE datasets (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name text NOT NULL,
        source jsonb NOT NULL,
        provenance text NOT NULL,
        num_classes integer NOT NULL CHECK (num_classes > 0),
        class_names text[] NOT NULL,
        train_count integer NOT NULL CHECK (train_count >= 0),
        test_count integer NOT NULL CHECK (test_count >= 0),
        input_shape integer[] NOT NULL CHECK (cardinality(input_shape) = 3),
        content_hash text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT datasets_project_name_unique UNIQUE (project_id, name)
      )`);
    await q.query(`
      CREATE TABLE pipelines (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name text NOT NULL,
        stages jsonb NOT NULL,
        teacher_model_id uuid NOT NULL,
        dataset_id uuid REFERENCES datasets(id) ON DELETE RESTRICT,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pipelines_project_name_unique UNIQUE (project_id, name)
      )`);
    await q.query(`
      CREATE TABLE runs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        pipeline_id uuid NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
        project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        status text NOT NULL DEFAULT 'queued'
          CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        error text,
        error_code text,
        seed bigint NOT NULL CHECK (seed >= 0 AND seed < 4294967296),
        backend text,
        hardware jsonb,
        plugin_versions jsonb,
        teacher_hash text,
        data_hash text,
        config jsonb NOT NULL,
        final_metrics jsonb,
        final_model_id uuid,
        created_by_id uuid REFERENCES members(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
      )`);
    await q.query(`CREATE INDEX runs_project_created ON runs (project_id, created_at DESC)`);
    await q.query(`CREATE INDEX runs_pipeline ON runs (pipeline_id)`);
    await q.query(`
      CREATE TABLE models (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name text NOT NULL,
        architecture text NOT NULL,
        spec jsonb,
        input_shape integer[] NOT NULL CHECK (cardinality(input_shape) = 3),
        num_classes integer NOT NULL CHECK (num_classes > 0),
        class_names text[] NOT NULL,
        artifact_id uuid NOT NULL REFERENCES artifacts(id) ON DELETE RESTRICT,
        content_hash text NOT NULL,
        params integer NOT NULL CHECK (params >= 0),
        macs double precision NOT NULL CHECK (macs >= 0),
        bytes integer NOT NULL CHECK (bytes >= 0),
        metrics jsonb NOT NULL DEFAULT '{}',
        origin text NOT NULL CHECK (origin IN ('zoo', 'imported', 'trained', 'pipeline')),
        dataset_id uuid REFERENCES datasets(id) ON DELETE SET NULL,
        run_id uuid REFERENCES runs(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT models_project_name_unique UNIQUE (project_id, name)
      )`);
    // A pipeline's teacher is a model of the project; created after models exist.
    await q.query(`
      ALTER TABLE pipelines ADD CONSTRAINT pipelines_teacher_fk
        FOREIGN KEY (teacher_model_id) REFERENCES models(id) ON DELETE RESTRICT`);
    await q.query(`
      ALTER TABLE runs ADD CONSTRAINT runs_final_model_fk
        FOREIGN KEY (final_model_id) REFERENCES models(id) ON DELETE SET NULL`);
    await q.query(`
      ALTER TABLE artifacts ADD CONSTRAINT artifacts_run_fk
        FOREIGN KEY (run_id) REFERENCES runs(id) ON DELETE SET NULL`);
    await q.query(`
      CREATE TABLE run_stages (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        run_id uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        index integer NOT NULL CHECK (index >= 0),
        plugin text NOT NULL,
        kind text NOT NULL,
        status text NOT NULL DEFAULT 'queued'
          CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
        config jsonb NOT NULL,
        metrics jsonb,
        started_at timestamptz,
        finished_at timestamptz,
        wall_ms integer,
        output_artifact_id uuid REFERENCES artifacts(id) ON DELETE SET NULL,
        CONSTRAINT run_stages_run_index_unique UNIQUE (run_id, index)
      )`);
    await q.query(`
      CREATE TABLE metric_points (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        run_id uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        stage_index integer NOT NULL,
        step integer NOT NULL,
        name text NOT NULL,
        value double precision NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX metric_points_run_name_step ON metric_points (run_id, name, step)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE metric_points`);
    await q.query(`DROP TABLE run_stages`);
    await q.query(`ALTER TABLE artifacts DROP CONSTRAINT artifacts_run_fk`);
    await q.query(`ALTER TABLE runs DROP CONSTRAINT runs_final_model_fk`);
    await q.query(`ALTER TABLE pipelines DROP CONSTRAINT pipelines_teacher_fk`);
    await q.query(`DROP TABLE models`);
    await q.query(`DROP TABLE runs`);
    await q.query(`DROP TABLE pipelines`);
    await q.query(`DROP TABLE datasets`);
    await q.query(`DROP TABLE artifacts`);
    await q.query(`DROP TABLE project_plugins`);
    await q.query(`DROP TABLE projects`);
    await q.query(`DROP TABLE api_tokens`);
    await q.query(`DROP TABLE members`);
    await q.query(`DROP TABLE teams`);
  }
}
