CREATE TABLE public.api_keys (
    id character varying(32) NOT NULL,
    name character varying(200) NOT NULL,
    team_id character varying(32),
    role character varying(16) NOT NULL,
    key_hash character varying(64) NOT NULL,
    hint character varying(16) NOT NULL,
    models json,
    rpm integer,
    tpm integer,
    budget_usd double precision,
    budget_period character varying(8),
    expires_at double precision,
    revoked_at double precision,
    created_at double precision NOT NULL,
    priority character varying(16),
    cache character varying(16)
);
CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    ts character varying(32) NOT NULL,
    actor character varying(200) NOT NULL,
    action character varying(64) NOT NULL,
    target character varying(500) NOT NULL,
    detail text NOT NULL,
    prev_hash character varying(64) NOT NULL,
    hash character varying(64) NOT NULL
);
CREATE TABLE public.secrets (
    name character varying(128) NOT NULL,
    key_id character varying(16) NOT NULL,
    nonce bytea NOT NULL,
    ciphertext bytea NOT NULL,
    created_at character varying(32) NOT NULL,
    updated_at character varying(32) NOT NULL
);
CREATE TABLE public.teams (
    id character varying(32) NOT NULL,
    name character varying(200) NOT NULL,
    models json,
    rpm integer,
    tpm integer,
    budget_usd double precision,
    budget_period character varying(8),
    created_at double precision NOT NULL
);
CREATE TABLE public.xvckit_doctor_runs (
    id bigint NOT NULL,
    ts double precision NOT NULL,
    host character varying(255) NOT NULL,
    velocity_band character varying(32),
    bottleneck character varying(200),
    report text NOT NULL
);
CREATE SEQUENCE public.xvckit_doctor_runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.xvckit_doctor_runs_id_seq OWNED BY public.xvckit_doctor_runs.id;
CREATE TABLE public.xvckit_meta (
    key character varying(64) NOT NULL,
    value text NOT NULL
);
CREATE TABLE public.xvckit_usage (
    id bigint NOT NULL,
    request_id character varying(128) NOT NULL,
    ts double precision NOT NULL,
    endpoint character varying(32) NOT NULL,
    key_id character varying(64),
    team_id character varying(64),
    model character varying(128),
    deployment character varying(200),
    status integer NOT NULL,
    error_type character varying(64),
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cached_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    cost_usd double precision NOT NULL,
    latency_ms double precision NOT NULL,
    ttft_ms double precision,
    upstream_ms double precision NOT NULL,
    overhead_ms double precision NOT NULL,
    retries integer NOT NULL,
    cache_hit boolean NOT NULL,
    client character varying(256),
    cost_saved_usd double precision DEFAULT '0'::double precision NOT NULL,
    client_request_id character varying(128)
);
CREATE SEQUENCE public.xvckit_usage_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.xvckit_usage_id_seq OWNED BY public.xvckit_usage.id;
CREATE TABLE public.xvckit_usage_rollup (
    span integer NOT NULL,
    bucket bigint NOT NULL,
    key_id character varying(64) NOT NULL,
    team_id character varying(64) NOT NULL,
    model character varying(128) NOT NULL,
    requests bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cached_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    cost_usd double precision NOT NULL,
    errors bigint NOT NULL
);
ALTER TABLE ONLY public.xvckit_doctor_runs ALTER COLUMN id SET DEFAULT nextval('public.xvckit_doctor_runs_id_seq'::regclass);
ALTER TABLE ONLY public.xvckit_usage ALTER COLUMN id SET DEFAULT nextval('public.xvckit_usage_id_seq'::regclass);
INSERT INTO public.api_keys VALUES ('key_9c7c6e05b0e1', 'alice', 'team_c112f73e7193', 'member', 'c53483dbf71e4ba1604040ffba43f393c1acc6d4172a0def8531ab5da2bbd0f8', 'xvc-pmzZ', '["gpt-4o*"]', NULL, NULL, 20, 'day', NULL, NULL, 1796402600.2448406, 'batch', 'deterministic');
INSERT INTO public.audit_log VALUES (1, '2026-12-04T16:43:20.237454Z', 'admin', 'team.create', 'team_c112f73e7193', '{"budget_period":"month","budget_usd":200.0,"models":null,"name":"platform","rpm":600,"tpm":null}', '0000000000000000000000000000000000000000000000000000000000000000', '48f550266f08c471c4203aa5d26d9e96ba1b478a459448b28c65a0d2883a8958');
INSERT INTO public.audit_log VALUES (2, '2026-12-04T16:43:20.250249Z', 'admin', 'key.create', 'key_9c7c6e05b0e1', '{"budget_period":"day","budget_usd":20.0,"cache":"deterministic","created_at":1796402600.2448406,"expires_at":null,"id":"key_9c7c6e05b0e1","models":["gpt-4o*"],"name":"alice","priority":"batch","revoked_at":null,"role":"member","rpm":null,"team_id":"team_c112f73e7193","tpm":null}', '48f550266f08c471c4203aa5d26d9e96ba1b478a459448b28c65a0d2883a8958', '30886db40d30341e249d343f8615a2c7458164f1c0505cbd2387b0b0bfa5eb2a');
INSERT INTO public.audit_log VALUES (3, '2026-12-04T16:43:20.265964Z', 'admin', 'secret.put', 'secret:openai-prod', '{"created":true}', '30886db40d30341e249d343f8615a2c7458164f1c0505cbd2387b0b0bfa5eb2a', 'da6d9171335850e7ebeed0503c4bc21799d25e235ae4193e3bdfa1867a2fdfee');
INSERT INTO public.secrets VALUES ('openai-prod', '537ea6d11d6f565f', '\xec7a4e163ca446bfa6f7ed62', '\xcce225409c25ddd13d7061166470705404be358b3df5fd6dd8df7011bcbf7845d37bc09139cc48a4ff', '2026-12-04T16:43:20.261524Z', '2026-12-04T16:43:20.261524Z');
INSERT INTO public.teams VALUES ('team_c112f73e7193', 'platform', 'null', 600, NULL, 200, 'month', 1796402600.2284577);
INSERT INTO public.xvckit_doctor_runs VALUES (1, 1764806400, 'fixture-host', 'high', 'network.latency', '{"started_at":1764806400.0,"host":"fixture-host","velocity_band":{"band":"high"},"bottleneck":{"id":"network.latency"},"checks":[]}');
INSERT INTO public.xvckit_meta VALUES ('schema_version', '1');
INSERT INTO public.xvckit_meta VALUES ('keys_version', '62a448d12a3bffe4');
INSERT INTO public.xvckit_meta VALUES ('audit_head', '3:da6d9171335850e7ebeed0503c4bc21799d25e235ae4193e3bdfa1867a2fdfee');
INSERT INTO public.xvckit_usage VALUES (1, 'req_fixture_1', 1764806400, 'chat', 'key_9c7c6e05b0e1', 'team_c112f73e7193', 'gpt-4o', 'openai/gpt-4o', 200, NULL, 1200, 300, 0, 0, 0.006, 812.5, NULL, 800, 0.4, 0, false, NULL, 0, NULL);
INSERT INTO public.xvckit_usage_rollup VALUES (3600, 1764806400, 'key_9c7c6e05b0e1', 'team_c112f73e7193', 'gpt-4o', 1, 1200, 300, 0, 0, 0.006, 0);
INSERT INTO public.xvckit_usage_rollup VALUES (86400, 1764806400, 'key_9c7c6e05b0e1', 'team_c112f73e7193', 'gpt-4o', 1, 1200, 300, 0, 0, 0.006, 0);
SELECT pg_catalog.setval('public.xvckit_doctor_runs_id_seq', 1, true);
SELECT pg_catalog.setval('public.xvckit_usage_id_seq', 1, true);
ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash);
ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.secrets
    ADD CONSTRAINT secrets_pkey PRIMARY KEY (name);
ALTER TABLE ONLY public.teams
    ADD CONSTRAINT teams_name_key UNIQUE (name);
ALTER TABLE ONLY public.teams
    ADD CONSTRAINT teams_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.xvckit_doctor_runs
    ADD CONSTRAINT xvckit_doctor_runs_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.xvckit_meta
    ADD CONSTRAINT xvckit_meta_pkey PRIMARY KEY (key);
ALTER TABLE ONLY public.xvckit_usage
    ADD CONSTRAINT xvckit_usage_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.xvckit_usage
    ADD CONSTRAINT xvckit_usage_request_id_key UNIQUE (request_id);
ALTER TABLE ONLY public.xvckit_usage_rollup
    ADD CONSTRAINT xvckit_usage_rollup_pkey PRIMARY KEY (span, bucket, key_id, team_id, model);
CREATE INDEX ix_audit_log_action ON public.audit_log USING btree (action);
CREATE INDEX ix_audit_log_ts ON public.audit_log USING btree (ts);
CREATE INDEX ix_xvckit_doctor_runs_ts ON public.xvckit_doctor_runs USING btree (ts);
CREATE INDEX ix_xvckit_usage_ts ON public.xvckit_usage USING btree (ts);
ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.teams(id);
