package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// pgbenchUsers is how many users' list queries pgbench sends in turn.
const pgbenchUsers = 20

// pgbenchTarget sends the list query pms sends, with the same values, to
// PostgreSQL through pgbench: PostgreSQL's own time for a list, the floor
// of what pms can cost.
func pgbenchTarget(ctx context.Context, e *environment) (result, error) {
	if len(e.listSQL) == 0 {
		if err := e.captureListSQL(ctx); err != nil {
			return result{}, err
		}
	}
	var files []string
	for i, q := range e.listSQL {
		f := filepath.Join(e.dir, fmt.Sprintf("list-%d.sql", i))
		if err := os.WriteFile(f, []byte(q+";\n"), 0o644); err != nil {
			return result{}, err
		}
		files = append(files, "-f", f)
	}
	return e.pgbenchRun(ctx, "extended", files)
}

// pgbenchTopic is the topic of the outbox rows postPgbenchTarget writes,
// which it deletes afterwards: no relay is running to take them.
const pgbenchTopic = "pms.load-pgbench"

// postPgbenchTarget sends a create as pms writes it (one statement: the
// product, its image, an image task and an event in the outbox, payloads
// of the same sizes) to PostgreSQL through pgbench, for the users in turn:
// PostgreSQL's own cost of a create, the floor of what a POST can cost.
// UUIDs are time-ordered as pms's are (version 7).
func postPgbenchTarget(ctx context.Context, e *environment) (result, error) {
	ids := make([]string, len(e.users))
	for i, u := range e.users {
		ids[i] = u.id
	}
	const v7 = `(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' ||
        substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid`
	task, event := strings.Repeat("t", 320), strings.Repeat("e", 900) // pms's payloads are about this long
	script := fmt.Sprintf(`\set u random(1, %d)
WITH product AS (
    INSERT INTO products (id, user_id, product_name, product_description, product_price, version, created_at, updated_at)
    SELECT %[2]s, (ARRAY[%[3]s])[:u], 'Desk lamp', 'Created by make load', 24.5::numeric, 1, now(), now()
    RETURNING id),
images AS (
    INSERT INTO product_images (id, product_id, position, source_url, status, updated_at)
    SELECT %[2]s, product.id, 0, 'http://127.0.0.1:9/lamp.jpg', 'pending', now() FROM product),
messages AS (
    INSERT INTO outbox (id, topic, key, payload, headers, created_at)
    SELECT %[2]s, '%[4]s', product.id::text, convert_to(m.payload, 'UTF8'), '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}'::jsonb, now()
    FROM product, unnest(ARRAY['%[5]s', '%[6]s']) AS m (payload))
SELECT count(*) FROM product;
`, len(ids), v7, quoteUUIDs(ids), pgbenchTopic, task, event)
	f := filepath.Join(e.dir, "create.sql")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		return result{}, err
	}
	r, err := e.pgbenchRun(ctx, "prepared", []string{"-f", f})
	if _, cerr := e.sql.ExecContext(ctx, "DELETE FROM outbox WHERE topic = $1", pgbenchTopic); err == nil && cerr != nil {
		err = fmt.Errorf("delete pgbench's outbox rows: %w", cerr)
	}
	// Tens of thousands of rows deleted at once are no relay's work: until
	// autovacuum came by, every later target's relay stepped over their
	// index entries in each read from the outbox's start (claims of
	// 100–430 ms once a second in the list runs after this target).
	if _, cerr := e.sql.ExecContext(ctx, "VACUUM outbox"); err == nil && cerr != nil {
		err = fmt.Errorf("vacuum the outbox after pgbench: %w", cerr)
	}
	return r, err
}

// pgbenchRun runs pgbench with the script files in the given query mode:
// after a vacuum (see quiesce), a warm-up, then the measured run, with
// PostgreSQL's CPU per transaction.
func (e *environment) pgbenchRun(ctx context.Context, mode string, files []string) (result, error) {
	if err := e.quiesce(ctx); err != nil {
		return result{}, err
	}
	if _, err := e.runPgbench(ctx, mode, files, max(e.o.warmup, 2*time.Second)); err != nil && ctx.Err() != nil {
		return result{}, err // a warm-up may end before its clients connected
	}
	before, err := e.postgres.cpu()
	if err != nil {
		return result{}, err
	}
	stopProbe, err := e.probeHost(ctx)
	if err != nil {
		return result{}, err
	}
	r, err := e.runPgbench(ctx, mode, files, e.o.duration)
	h, herr := stopProbe()
	if err != nil {
		return result{}, err
	}
	if herr != nil {
		return result{}, herr
	}
	r.host = h
	after, err := e.postgres.cpu()
	if err != nil {
		return result{}, err
	}
	r.cpu = map[string]time.Duration{"postgres": (after - before) / time.Duration(max(r.requests, 1))}
	r.order = []string{"postgres"}
	return r, nil
}

var (
	pgbenchTx  = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	pgbenchTPS = regexp.MustCompile(`tps = ([\d.]+)`)
	pgbenchLat = regexp.MustCompile(`latency average = ([\d.]+) ms`)
	pgbenchErr = regexp.MustCompile(`number of failed transactions: (\d+)`)
)

func (e *environment) runPgbench(ctx context.Context, mode string, files []string, d time.Duration) (result, error) {
	u, err := url.Parse(e.pgURL)
	if err != nil {
		return result{}, err
	}
	// Each transaction's latency goes to a log file, for the p99.
	logs, err := os.MkdirTemp(e.dir, "pgbench.")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(logs)
	args := append([]string{"-c", strconv.Itoa(e.o.clientCore), "pgbench", "-n", "-M", mode,
		"-c", strconv.Itoa(e.o.conns), "-j", "1", "-T", strconv.Itoa(int(d.Seconds())),
		"-l", "--log-prefix", filepath.Join(logs, "tx"),
		"-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username()}, files...)
	out, err := exec.CommandContext(ctx, "taskset", append(args, strings.TrimPrefix(u.Path, "/"))...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("pgbench: %v: %s", err, out)
	}
	tx, tps, lat := pgbenchTx.FindSubmatch(out), pgbenchTPS.FindSubmatch(out), pgbenchLat.FindSubmatch(out)
	if tx == nil || tps == nil || lat == nil {
		return result{}, fmt.Errorf("pgbench printed no figures: %s", out)
	}
	var r result
	r.requests, _ = strconv.Atoi(string(tx[1]))
	r.rps, _ = strconv.ParseFloat(string(tps[1]), 64)
	l, _ := strconv.ParseFloat(string(lat[1]), 64)
	r.mean = time.Duration(l * float64(time.Millisecond))
	if r.p99, err = pgbenchP99(logs); err != nil {
		return result{}, err
	}
	if m := pgbenchErr.FindSubmatch(out); m != nil {
		r.errors, _ = strconv.Atoi(string(m[1]))
	}
	return r, nil
}

// captureListSQL has PostgreSQL log every statement while pms answers one
// list request for each of the first users, and keeps the list queries
// with their parameters written in, as pgbench will send them.
func (e *environment) captureListSQL(ctx context.Context) error {
	if e.pgLog == "" {
		return fmt.Errorf("PMS_TEST_POSTGRES_LOG is not set (run through deploy/services.sh load)")
	}
	st, err := os.Stat(e.pgLog)
	if err != nil {
		return err
	}
	if err := e.logStatements(ctx, true); err != nil {
		return err
	}
	users := e.users[:min(pgbenchUsers, len(e.users))]
	_, err = withServer(ctx, e, pmsServer("pms"), func(_ *proc, base string) (result, error) {
		for _, u := range users {
			if code, body, err := call(ctx, "GET", base+listPath(u.id), u.key, "", nil); err != nil || code != 200 {
				return result{}, fmt.Errorf("list: %d %v %s", code, err, body)
			}
		}
		return result{}, nil
	})
	if err2 := e.logStatements(ctx, false); err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	log, err := os.ReadFile(e.pgLog)
	if err != nil {
		return err
	}
	for _, u := range users {
		q, ok := findStatement(string(log[st.Size():]), u.id)
		if !ok {
			return fmt.Errorf("no list query with user %s in the PostgreSQL log", u.id)
		}
		e.listSQL = append(e.listSQL, q)
	}
	return nil
}

// logStatements turns the logging of every statement and its duration on
// or off, for the sessions opened after it. A setting of the database,
// since it overrides the server's command line.
func (e *environment) logStatements(ctx context.Context, on bool) error {
	q := "ALTER DATABASE pms_load RESET log_min_duration_statement"
	if on {
		q = "ALTER DATABASE pms_load SET log_min_duration_statement = 0"
	}
	_, err := e.sql.ExecContext(ctx, q)
	return err
}

var (
	logEntry = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] (LOG|DETAIL|ERROR|STATEMENT|HINT|WARNING|FATAL):  `)
	logParam = regexp.MustCompile(`\$(\d+) = (NULL|'(?:[^']|'')*')`)
	sqlParam = regexp.MustCompile(`\$(\d+)\b`)
)

// findStatement returns, from a PostgreSQL log, the first executed product
// SELECT whose parameters include value, with the parameters written in.
func findStatement(log, value string) (string, bool) {
	idx := logEntry.FindAllStringIndex(log, -1)
	for i, at := range idx {
		end := len(log)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		_, stmt, ok := strings.Cut(log[at[1]:end], "execute <unnamed>: ")
		if !ok || !strings.Contains(stmt, "FROM products") || i+1 >= len(idx) {
			continue
		}
		next := len(log)
		if i+2 < len(idx) {
			next = idx[i+2][0]
		}
		detail, found := strings.CutPrefix(log[idx[i+1][1]:next], "parameters: ")
		if !found || !strings.Contains(detail, "'"+value+"'") {
			continue
		}
		params := map[string]string{}
		for _, m := range logParam.FindAllStringSubmatch(detail, -1) {
			params[m[1]] = m[2]
		}
		return sqlParam.ReplaceAllStringFunc(strings.TrimSpace(stmt), func(s string) string {
			if v, ok := params[s[1:]]; ok {
				return v
			}
			return s
		}), true
	}
	return "", false
}

// pgbenchP99 returns the 99th percentile of the transaction latencies in
// the logs pgbench -l wrote into dir (the third field of each line, in µs).
func pgbenchP99(dir string) (time.Duration, error) {
	files, err := filepath.Glob(filepath.Join(dir, "tx*"))
	if err != nil {
		return 0, err
	}
	var lat []int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 3 {
				if us, err := strconv.ParseInt(f[2], 10, 64); err == nil {
					lat = append(lat, us)
				}
			}
		}
	}
	if len(lat) == 0 {
		return 0, fmt.Errorf("pgbench logged no transactions in %s", dir)
	}
	slices.Sort(lat)
	return time.Duration(lat[len(lat)*99/100]) * time.Microsecond, nil
}
