package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	_ "github.com/lib/pq" // the PostgreSQL driver
	goredis "github.com/redis/go-redis/v9"

	"github.com/pms-dev/pms/platform/freeport"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/product/account"
)

// environment is what every target runs against: the services, the pms
// binaries, and the users whose keys the requests carry.
type environment struct {
	o        options
	dir      string
	pms      string // binaries
	baseline string
	self     string
	pgURL    string // the load database
	pgLog    string
	redis    string
	brokers  string
	sql      *sql.DB
	postgres *proc // measured, started by deploy/services.sh
	redisP   *proc
	kafka    *proc
	users    []loadUser
	// productBody is pms's answer to a GET of the first user's product.
	productBody []byte
	listSQL     []string // the list query of the first users, as pms sends it, for pgbench
	run         string   // the target and round being measured, for -perf's file names
}

// loadUser is a user with an API key, their product for the GET targets,
// and the -rows/-users seeded products for the list targets.
type loadUser struct {
	id, key, product string
}

func newEnvironment(ctx context.Context, o options, dir string) (*environment, error) {
	e := &environment{o: o, dir: dir, pgLog: os.Getenv("PMS_TEST_POSTGRES_LOG"), redis: os.Getenv("PMS_TEST_REDIS_ADDR")}
	base := os.Getenv("PMS_TEST_POSTGRES_URL")
	if base == "" || e.redis == "" {
		return nil, fmt.Errorf("PMS_TEST_POSTGRES_URL and PMS_TEST_REDIS_ADDR are not set: run me through deploy/services.sh load (make load)")
	}
	var err error
	if e.pms, err = absPath(o.pms); err != nil {
		return nil, fmt.Errorf("-pms: %w (make build)", err)
	}
	if e.baseline, err = absPath(o.baseline); err != nil {
		return nil, fmt.Errorf("-baseline: %w", err)
	}
	if e.self, err = os.Executable(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			e.close()
		}
	}()
	if err := e.openPostgres(ctx, base); err != nil {
		return nil, err
	}
	if err := e.pinServices(ctx); err != nil {
		return nil, err
	}
	progress("migrating")
	if out, err := runOut(ctx, e.pms, []string{"PMS_POSTGRES_URL=" + e.pgURL}, "migrate", "up"); err != nil {
		return nil, fmt.Errorf("pms migrate: %v: %s", err, out)
	}
	if err := e.startKafka(ctx); err != nil {
		return nil, err
	}
	if err := e.createUsers(ctx); err != nil {
		return nil, err
	}
	if err := e.seedProducts(ctx); err != nil {
		return nil, err
	}
	if err := e.warmWAL(ctx); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// openPostgres creates the load database next to the one base names.
func (e *environment) openPostgres(ctx context.Context, base string) error {
	admin, err := sql.Open("postgres", base)
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS pms_load"); err != nil {
		return err
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE pms_load"); err != nil {
		return err
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	u.Path = "/pms_load"
	e.pgURL = u.String()
	if e.sql, err = sql.Open("postgres", e.pgURL); err != nil {
		return err
	}
	_, err = e.sql.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	return err
}

// pinServices pins PostgreSQL and Redis, which deploy/services.sh started,
// to the server core and measures them.
func (e *environment) pinServices(ctx context.Context) error {
	var backend int
	if err := e.sql.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return err
	}
	_, postmaster, err := readStat(backend)
	if err != nil {
		return err
	}
	if err := pinTree(postmaster, e.o.serverCore); err != nil {
		return err
	}
	e.postgres = &proc{name: "postgres", pid: postmaster, tree: true}

	info, err := runOut(ctx, "redis-cli", nil, "-h", strings.Split(e.redis, ":")[0], "-p", strings.Split(e.redis, ":")[1], "info", "server")
	if err != nil {
		return fmt.Errorf("redis-cli info: %v: %s", err, info)
	}
	var pid int
	for _, line := range strings.Split(info, "\n") {
		if v, found := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); found {
			_, _ = fmt.Sscan(v, &pid)
		}
	}
	if pid == 0 {
		return fmt.Errorf("redis-cli info server: no process_id")
	}
	if err := pin(pid, e.o.serverCore); err != nil {
		return err
	}
	e.redisP = &proc{name: "redis", pid: pid}
	return nil
}

// startKafka runs the development broker as its own process.
func (e *environment) startKafka(ctx context.Context) error {
	addr, err := freeport.Addr()
	if err != nil {
		return err
	}
	e.brokers = addr
	progress("starting the Kafka-protocol broker (pms dev kafka) on %s", addr)
	e.kafka, err = start(ctx, "kafka", e.o.serverCore, nil, filepath.Join(e.dir, "kafka.log"), tcpReady(addr),
		e.pms, "dev", "kafka", "--addr", addr, "--data", filepath.Join(e.dir, "kafka"))
	return err
}

// createUsers makes -users users, each with an API key.
func (e *environment) createUsers(ctx context.Context) error {
	progress("creating %d users and API keys", e.o.users)
	cfg := postgres.DefaultConfig()
	cfg.URL = e.pgURL
	db, err := postgres.Open(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	accounts := account.NewService(postgres.NewAccountStore(db))
	for i := range e.o.users {
		u, err := accounts.CreateUser(ctx, fmt.Sprintf("load-%d@example.com", i), fmt.Sprintf("Load %d", i), false)
		if err != nil {
			return err
		}
		key, _, err := accounts.CreateKey(ctx, u.ID)
		if err != nil {
			return err
		}
		e.users = append(e.users, loadUser{id: u.ID.String(), key: key})
	}
	return nil
}

// seedProducts writes -rows products with one ready image each, spread over
// the users, straight into PostgreSQL. Their ids ascend, as pms's UUIDv7
// ids do, so the inserts append to the primary keys instead of scattering.
func (e *environment) seedProducts(ctx context.Context) error {
	if e.o.rows > 0 {
		progress("seeding %d products with an image each (takes a minute or two)", e.o.rows)
		ids := make([]string, len(e.users))
		for i, u := range e.users {
			ids[i] = u.id
		}
		for _, q := range []string{
			`INSERT INTO products (id, user_id, product_name, product_description, product_price, created_at, updated_at)
			 SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, (ARRAY[` + quoteUUIDs(ids) + `])[1 + g % ` + fmt.Sprint(len(ids)) + `],
			        'Seeded product ' || g, 'Seeded for make load', (g % 10000) / 100.0,
			        now() - g * interval '1 second', now()
			 FROM generate_series(1, ` + fmt.Sprint(e.o.rows) + `) g`,
			`INSERT INTO product_images (id, product_id, position, source_url, status, variants, updated_at)
			 SELECT overlay(id::text PLACING '8001' FROM 20 FOR 4)::uuid, id, 0, 'https://images.example/' || id || '.jpg', 'ready',
			        json_build_array(json_build_object('name', 'main', 'url', 'https://cdn.example/' || id || '.jpg',
			          'width', 1600, 'height', 1200, 'bytes', 183211, 'format', 'jpeg')), now()
			 FROM products`,
			`VACUUM ANALYZE`,
			// The measured runs start from a clean state, not with the
			// seed's dirty pages still to be written.
			`CHECKPOINT`,
		} {
			if _, err := e.sql.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
		}
		var size string
		if err := e.sql.QueryRowContext(ctx, `SELECT pg_size_pretty(pg_database_size(current_database()))`).Scan(&size); err != nil {
			return fmt.Errorf("seed: database size: %w", err)
		}
		progress("seeded: the database takes %s", size)
	}
	return nil
}

// warmSegments is how many WAL segments warmWAL makes: max_wal_size's
// default of 1 GB in 16 MB segments.
const warmSegments = 64

// warmWAL gives PostgreSQL used WAL segments to recycle, as a server in
// service has. A cluster initdb made minutes before has none, so it
// creates and zero-fills a new 16 MB segment each time the WAL fills one
// (every 3 s or so under POST), and every commit waits 50–100 ms behind
// it (BENCHMARKS.md, thirteenth run). Each pg_switch_wal after a record
// moves to a new segment; the checkpoint then recycles them for the runs.
func (e *environment) warmWAL(ctx context.Context) error {
	progress("warming PostgreSQL's WAL: %d segments to recycle", warmSegments)
	for _, q := range []string{
		`SELECT count(*) FROM (SELECT pg_logical_emit_message(false, 'pms-load', 'warm'), pg_switch_wal()
		 FROM generate_series(1, ` + fmt.Sprint(warmSegments) + `)) s`,
		`CHECKPOINT`,
	} {
		if _, err := e.sql.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("warm the WAL: %w", err)
		}
	}
	return nil
}

// quoteUUIDs returns ids as a list of uuid literals.
func quoteUUIDs(ids []string) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "'%s'::uuid", uuid.MustParse(id))
	}
	return b.String()
}

// close stops what the environment started.
func (e *environment) close() {
	e.kafka.stop()
	if e.sql != nil {
		_ = e.sql.Close()
	}
}

// flushRedis empties the load's Redis.
func (e *environment) flushRedis(ctx context.Context) error {
	c := goredis.NewClient(&goredis.Options{Addr: e.redis, DisableIdentity: true})
	defer c.Close()
	if err := c.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("flush redis: %w", err)
	}
	return nil
}
