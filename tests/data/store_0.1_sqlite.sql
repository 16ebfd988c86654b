PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE xvckit_meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO xvckit_meta VALUES('schema_version','1');
INSERT INTO xvckit_meta VALUES('keys_version','8650dd8acad7678a');
INSERT INTO xvckit_meta VALUES('audit_head','3:d786aa6f15536c7d4240f273f51539b7bdc1cbe5d7ae370aeb1f952a5ada338a');
CREATE TABLE xvckit_doctor_runs (
	id INTEGER NOT NULL, 
	ts DOUBLE NOT NULL, 
	host VARCHAR(255) NOT NULL, 
	velocity_band VARCHAR(32), 
	bottleneck VARCHAR(200), 
	report TEXT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO xvckit_doctor_runs VALUES(1,1764806400.0,'fixture-host','high','network.latency','{"started_at":1764806400.0,"host":"fixture-host","velocity_band":{"band":"high"},"bottleneck":{"id":"network.latency"},"checks":[]}');
CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	ts VARCHAR(32) NOT NULL, 
	actor VARCHAR(200) NOT NULL, 
	action VARCHAR(64) NOT NULL, 
	target VARCHAR(500) NOT NULL, 
	detail TEXT NOT NULL, 
	prev_hash VARCHAR(64) NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO audit_log VALUES(1,'2026-12-04T16:43:19.474555Z','admin','team.create','team_2a0783e47243','{"budget_period":"month","budget_usd":200.0,"models":null,"name":"platform","rpm":600,"tpm":null}','0000000000000000000000000000000000000000000000000000000000000000','be82951ca170cd4c9063bb63c28403a83402caf1b90508acb011b62833ea072d');
INSERT INTO audit_log VALUES(2,'2026-12-04T16:43:19.481311Z','admin','key.create','key_e27538acf28d','{"budget_period":"day","budget_usd":20.0,"cache":"deterministic","created_at":1796402599.4796422,"expires_at":null,"id":"key_e27538acf28d","models":["gpt-4o*"],"name":"alice","priority":"batch","revoked_at":null,"role":"member","rpm":null,"team_id":"team_2a0783e47243","tpm":null}','be82951ca170cd4c9063bb63c28403a83402caf1b90508acb011b62833ea072d','b8deb6e0e5911f1e1c9e241069731f7af3f150be81d1eb647939dc699ee73f1b');
INSERT INTO audit_log VALUES(3,'2026-12-04T16:43:19.485500Z','admin','secret.put','secret:openai-prod','{"created":true}','b8deb6e0e5911f1e1c9e241069731f7af3f150be81d1eb647939dc699ee73f1b','d786aa6f15536c7d4240f273f51539b7bdc1cbe5d7ae370aeb1f952a5ada338a');
CREATE TABLE secrets (
	name VARCHAR(128) NOT NULL, 
	key_id VARCHAR(16) NOT NULL, 
	nonce BLOB NOT NULL, 
	ciphertext BLOB NOT NULL, 
	created_at VARCHAR(32) NOT NULL, 
	updated_at VARCHAR(32) NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO secrets VALUES('openai-prod','537ea6d11d6f565f',X'941944ba1315243806a02fb3',X'6f7b3d918da2162bfc6c2527c0df7132bbbff90287baa3e1589be896b0214795bd9854bbf13cfacb3c','2026-12-04T16:43:19.483935Z','2026-12-04T16:43:19.483935Z');
CREATE TABLE xvckit_usage (
	id INTEGER NOT NULL, 
	request_id VARCHAR(128) NOT NULL, 
	ts DOUBLE NOT NULL, 
	endpoint VARCHAR(32) NOT NULL, 
	key_id VARCHAR(64), 
	team_id VARCHAR(64), 
	model VARCHAR(128), 
	deployment VARCHAR(200), 
	status INTEGER NOT NULL, 
	error_type VARCHAR(64), 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_tokens BIGINT NOT NULL, 
	cache_write_tokens BIGINT NOT NULL, 
	cost_usd DOUBLE NOT NULL, 
	latency_ms DOUBLE NOT NULL, 
	ttft_ms DOUBLE, 
	upstream_ms DOUBLE NOT NULL, 
	overhead_ms DOUBLE NOT NULL, 
	retries INTEGER NOT NULL, 
	cache_hit BOOLEAN NOT NULL, 
	client VARCHAR(256), 
	cost_saved_usd DOUBLE DEFAULT '0' NOT NULL, 
	client_request_id VARCHAR(128), 
	PRIMARY KEY (id), 
	UNIQUE (request_id)
);
INSERT INTO xvckit_usage VALUES(1,'req_fixture_1',1764806400.0,'chat','key_e27538acf28d','team_2a0783e47243','gpt-4o','openai/gpt-4o',200,NULL,1200,300,0,0,0.0060000000000000001249,812.5,NULL,800.0,0.4000000000000000222,0,0,NULL,0.0,NULL);
CREATE TABLE xvckit_usage_rollup (
	span INTEGER NOT NULL, 
	bucket BIGINT NOT NULL, 
	key_id VARCHAR(64) NOT NULL, 
	team_id VARCHAR(64) NOT NULL, 
	model VARCHAR(128) NOT NULL, 
	requests BIGINT NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cached_tokens BIGINT NOT NULL, 
	cache_write_tokens BIGINT NOT NULL, 
	cost_usd DOUBLE NOT NULL, 
	errors BIGINT NOT NULL, 
	PRIMARY KEY (span, bucket, key_id, team_id, model)
)
 WITHOUT ROWID

;
INSERT INTO xvckit_usage_rollup VALUES(3600,1764806400,'key_e27538acf28d','team_2a0783e47243','gpt-4o',1,1200,300,0,0,0.0060000000000000001249,0);
INSERT INTO xvckit_usage_rollup VALUES(86400,1764806400,'key_e27538acf28d','team_2a0783e47243','gpt-4o',1,1200,300,0,0,0.0060000000000000001249,0);
CREATE TABLE teams (
	id VARCHAR(32) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	models JSON, 
	rpm INTEGER, 
	tpm INTEGER, 
	budget_usd FLOAT, 
	budget_period VARCHAR(8), 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
INSERT INTO teams VALUES('team_2a0783e47243','platform','null',600,NULL,200.0,'month',1796402599.4723351001);
CREATE TABLE api_keys (
	id VARCHAR(32) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	team_id VARCHAR(32), 
	role VARCHAR(16) NOT NULL, 
	key_hash VARCHAR(64) NOT NULL, 
	hint VARCHAR(16) NOT NULL, 
	models JSON, 
	rpm INTEGER, 
	tpm INTEGER, 
	budget_usd FLOAT, 
	budget_period VARCHAR(8), 
	expires_at FLOAT, 
	revoked_at FLOAT, 
	created_at FLOAT NOT NULL, 
	priority VARCHAR(16), 
	cache VARCHAR(16), 
	PRIMARY KEY (id), 
	FOREIGN KEY(team_id) REFERENCES teams (id), 
	UNIQUE (key_hash)
);
INSERT INTO api_keys VALUES('key_e27538acf28d','alice','team_2a0783e47243','member','6ab3a448874e50ae939696d8b06797086148a6ae82864cfd6a3b2132086e7876','xvc-zJe0','["gpt-4o*"]',NULL,NULL,20.0,'day',NULL,NULL,1796402599.4796421528,'batch','deterministic');
CREATE INDEX ix_xvckit_doctor_runs_ts ON xvckit_doctor_runs (ts);
CREATE INDEX ix_audit_log_ts ON audit_log (ts);
CREATE INDEX ix_audit_log_action ON audit_log (action);
CREATE INDEX ix_xvckit_usage_ts ON xvckit_usage (ts);
COMMIT;
