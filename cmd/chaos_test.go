package cmd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestChaos runs pms as separate processes (two serve, two worker, the
// broker, the S3 server, PostgreSQL and Redis) and breaks one of them at a
// time under load, counting what happened to every request and every image
// task. Each subtest is one scenario on the same stack; -chaos.full (make
// chaos) runs them at full size.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms and its dependencies as processes")
	}
	t.Parallel()
	s := newChaosStack(t, nil)
	t.Run("broker", func(t *testing.T) { chaosBroker(t, s) })
	t.Run("worker", func(t *testing.T) { chaosWorker(t, s) })
	t.Run("postgres", func(t *testing.T) { chaosPostgres(t, s) })
	t.Run("redis", func(t *testing.T) { chaosRedis(t, s) })
	t.Run("s3", func(t *testing.T) { chaosS3(t, s) })
}

// chaosBroker creates image tasks and SIGKILLs the broker when about 1/3
// and again 1/2 of them have settled, starting it again on its data dir.
func chaosBroker(t *testing.T, s *chaosStack) {
	s.t = t
	n := chaosSize(600, 10000)
	cs, user := s.user("broker")
	var l tally
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); s.createImages(cs, "broker", n, 20, 4, &l) }()
	for _, at := range []int{n / 3, n / 2} {
		s.waitProgress(user, at, 5*time.Minute)
		c := s.counts(user)
		s.killKafka(2 * time.Second)
		t.Logf("broker SIGKILLed at %v and restarted 2s later", c)
	}
	<-done
	l.clean(t, "creates", false)
	c := s.waitSettledImages(user, n, 10*time.Minute)
	took := time.Since(start)
	dups, _ := s.checkSettled(user, "broker", n)
	t.Logf("%d images in %v (%.0f/s): creates %v; %v; %d sources fetched again (duplicates)",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), &l, c, dups)
}

// chaosWorker SIGKILLs one worker when about 1/3 of the tasks have
// settled, waits for the other to take all partitions, starts the first
// again, and at about 2/3 SIGKILLs the second in the same way.
func chaosWorker(t *testing.T, s *chaosStack) {
	s.t = t
	n := chaosSize(600, 4000)
	cs, user := s.user("worker")
	var l tally
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); s.createImages(cs, "worker", n, 20, 4, &l) }()
	for i, at := range []int{n / 3, 2 * n / 3} {
		s.waitProgress(user, at, 5*time.Minute)
		dead, other := i, 1-i
		killed := time.Now()
		if err := s.workers[dead].signal(t, syscall.SIGKILL); err == nil {
			t.Fatalf("worker %d exited with status 0 after SIGKILL", dead)
		}
		c := s.counts(user)
		parts := s.waitWorkersAssigned(s.workers[other])
		t.Logf("worker %d SIGKILLed at %v; worker %d took all partitions %v %v later", dead, c, other, parts[0],
			time.Since(killed).Round(time.Millisecond))
		s.workers[dead] = s.startWorker()
		parts = s.waitWorkersAssigned(s.workers...)
		t.Logf("worker %d started again; partitions %v", dead, parts)
	}
	<-done
	l.clean(t, "creates", false)
	c := s.waitSettledImages(user, n, 10*time.Minute)
	took := time.Since(start)
	dups, _ := s.checkSettled(user, "worker", n)
	t.Logf("%d images in %v: creates %v; %v; %d sources fetched again (duplicates)",
		n, took.Round(time.Millisecond), &l, c, dups)
}

// chaosPostgres stops PostgreSQL for 5 s while products are created, read,
// listed and changed through both serve processes and the workers run
// their tasks, and starts it again.
func chaosPostgres(t *testing.T, s *chaosStack) {
	s.t = t
	cs, user := s.user("postgres")
	var creates, reads, writes tally
	r, err := cs[0].do(http.MethodPost, "/api/v1/products", `{"product_name":"Chaos read","product_price":1}`)
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("POST = %v %v, want 201", r, err)
	}
	var p struct{ ID string }
	_ = json.Unmarshal([]byte(r.body), &p)
	stop, done := make(chan struct{}), make(chan struct{}, 2)
	per := chaosSize(2, 5)
	go func() { s.postUntil(stop, cs, "postgres", per, 2, 100*time.Millisecond, &creates); done <- struct{}{} }()
	go func() { readUntil(stop, cs, p.ID, 20*time.Millisecond, &reads, &writes); done <- struct{}{} }()
	time.Sleep(3 * time.Second)
	before := creates.count(http.StatusCreated)
	s.pg.Stop(t)
	time.Sleep(5 * time.Second)
	during := creates.count(http.StatusServiceUnavailable)
	s.pg.Start(t)
	restarted := time.Now()
	waitUntil(t, 30*time.Second, "creates to succeed again", func() bool {
		return creates.count(http.StatusCreated) > before+5
	})
	recovered := time.Since(restarted)
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	<-done
	creates.clean(t, "creates", true)
	reads.clean(t, "reads and lists", true)
	writes.clean(t, "changes", true)
	if during == 0 || writes.count(http.StatusServiceUnavailable) == 0 || reads.count(http.StatusServiceUnavailable) == 0 {
		t.Errorf("no 503 during the outage: creates %v; reads %v; changes %v", &creates, &reads, &writes)
	}
	n := creates.count(http.StatusCreated) * per
	c := s.waitSettledImages(user, n, 5*time.Minute)
	dups, _ := s.checkSettled(user, "postgres", n)
	t.Logf("creates %v; reads and lists %v; changes %v; recovered %v after the restart; %v; %d sources fetched again",
		&creates, &reads, &writes, recovered.Round(time.Millisecond), c, dups)
}

// chaosRedis kills Redis for 4 s under load, with a third serve process
// whose write limit is low, and starts it again: no answer is a 5xx, the
// limit fails open while Redis is away and holds again after, and the
// product cache fills again.
func chaosRedis(t *testing.T, s *chaosStack) {
	s.t = t
	cs, user := s.user("redis")
	// The limit is per key, so the limited process gets a key of its own.
	other, _ := s.user("redis-limited")
	limited := s.startServe(map[string]string{"PMS_RATE_LIMIT_WRITE_RATE": "1", "PMS_RATE_LIMIT_WRITE_BURST": "5"})
	lc := apiClient{base: "http://" + limited.api, key: other[0].key}
	burst := func(what string) (ok, limitedN int) {
		t.Helper()
		for range 15 {
			r, err := lc.do(http.MethodPost, "/api/v1/products", `{"product_name":"Chaos limit","product_price":1}`)
			switch {
			case err != nil || r.status >= 500:
				t.Errorf("%s: POST = %v %v, want 201 or 429", what, r.status, err)
			case r.status == http.StatusTooManyRequests:
				limitedN++
			case r.status == http.StatusCreated:
				ok++
			}
		}
		return ok, limitedN
	}
	r, err := cs[0].do(http.MethodPost, "/api/v1/products", `{"product_name":"Chaos cached","product_price":1}`)
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("POST = %v %v, want 201", r, err)
	}
	var p struct{ ID string }
	_ = json.Unmarshal([]byte(r.body), &p)
	ok, lim := burst("before")
	t.Logf("before: 15 POSTs at once through the limited process: %d created, %d limited", ok, lim)
	if lim == 0 {
		t.Errorf("before the outage: no POST of 15 at once was limited (burst 5)")
	}
	var creates, reads, writes tally
	stop, done := make(chan struct{}), make(chan struct{}, 2)
	go func() { s.postUntil(stop, cs, "redis", 2, 2, 100*time.Millisecond, &creates); done <- struct{}{} }()
	go func() { readUntil(stop, cs, p.ID, 20*time.Millisecond, &reads, &writes); done <- struct{}{} }()
	time.Sleep(2 * time.Second)
	s.redis.Stop()
	time.Sleep(time.Second)
	ok, lim = burst("during")
	t.Logf("Redis away: 15 POSTs at once through the limited process: %d created, %d limited (fails open)", ok, lim)
	time.Sleep(3 * time.Second)
	s.redis.Restart()
	restarted := time.Now()
	waitUntil(t, 30*time.Second, "the product to be cached in Redis again", func() bool {
		_, _ = cs[1].do(http.MethodGet, "/api/v1/products/"+p.ID, "")
		in, _ := s.redis.Exists("pms:product:{" + p.ID + "}")
		return in
	})
	cached := time.Since(restarted)
	waitUntil(t, 30*time.Second, "the write limit to hold again", func() bool {
		ok, lim = burst("after")
		return lim > 0
	})
	limitedAgain := time.Since(restarted)
	if err := limited.signal(t, syscall.SIGTERM); err != nil {
		t.Errorf("the limited serve process exited with %v after SIGTERM, want status 0", err)
	}
	close(stop)
	<-done
	<-done
	creates.clean(t, "creates", false)
	reads.clean(t, "reads and lists", false)
	writes.clean(t, "changes", false)
	n := creates.count(http.StatusCreated) * 2
	c := s.waitSettledImages(user, n, 5*time.Minute)
	s.checkSettled(user, "redis", n)
	t.Logf("creates %v; reads and lists %v; changes %v; after the restart the product was cached again in %v and the limit held again in %v (%d created, %d limited); %v",
		&creates, &reads, &writes, cached.Round(time.Millisecond), limitedAgain.Round(time.Millisecond), ok, lim, c)
}

// chaosS3 makes every 20th image's source never answer and the S3 server
// answer 503 SlowDown for 3 s while the tasks run: the hanging sources
// time out and fail after their attempts, the uploads refused are retried
// (or fail as storage_unavailable after their attempts), and the other
// images of the same partitions keep moving.
func chaosS3(t *testing.T, s *chaosStack) {
	s.t = t
	n, hang := chaosSize(200, 3000), 20
	cs, user := s.user("s3")
	var l tally
	start := time.Now()
	done := make(chan struct{})
	go func() { defer close(done); s.createHangingImages(cs, "s3", n, hang, &l) }()
	s.waitProgress(user, n/4, 5*time.Minute)
	s.s3Proxy.failing.Store(true)
	c := s.counts(user)
	time.Sleep(3 * time.Second)
	s.s3Proxy.failing.Store(false)
	t.Logf("S3 answered 503 for 3s from %v: %d requests refused", c, s.s3Proxy.refused.Load())
	<-done
	l.clean(t, "creates", false)
	c = s.waitSettledImages(user, n, 10*time.Minute)
	took := time.Since(start)
	_, orphans := s.checkSettled(user, "s3", n)
	hanging := n / hang
	if c.failures["source_timeout"] != hanging || c.status["ready"] != n-hanging-c.failures["storage_unavailable"] {
		t.Errorf("%v; want the %d hanging sources failed as source_timeout and every other image ready or storage_unavailable", c, hanging)
	}
	for code := range c.failures {
		if !strings.Contains("timeout source_timeout storage_unavailable", code) {
			t.Errorf("%d images failed as %q, want only time-outs and storage_unavailable", c.failures[code], code)
		}
	}
	t.Logf("%d images (%d hanging) in %v: creates %v; %v; %d objects left by tasks that failed after uploading a variant",
		n, hanging, took.Round(time.Millisecond), &l, c, orphans)
}

// TestScaleOut measures what a second process of each kind brings: image
// tasks per second with one and two worker processes on the same broker
// (6 partitions), a change through one serve process read through the
// other, a rate limit over two serve processes, and a rebalance (a third
// worker joining and leaving) while tasks run.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs pms and its dependencies as processes")
	}
	t.Parallel()
	s := newChaosStack(t, nil)
	t.Run("workers", func(t *testing.T) {
		if !*chaosFull {
			t.Skip("a measurement: make chaos runs it (-chaos.full)")
		}
		scaleWorkers(t, s)
	})
	t.Run("serves", func(t *testing.T) { scaleServes(t, s) })
	t.Run("rebalance", func(t *testing.T) { scaleRebalance(t, s) })
}

// scaleWorkers creates a backlog of tasks with no worker running, then
// starts one or two and times them from the first image settled to the
// last, twice each, interleaved.
func scaleWorkers(t *testing.T, s *chaosStack) {
	s.t = t
	n := chaosSize(300, 2000)
	for i, w := range s.workers {
		if err := w.signal(t, syscall.SIGTERM); err != nil {
			t.Fatalf("worker %d exited with %v after SIGTERM, want status 0", i, err)
		}
	}
	rates := map[int][]float64{}
	rounds := []int{1, 2}
	if *chaosFull {
		rounds = []int{1, 2, 2, 1}
	}
	for round, workers := range rounds {
		name := fmt.Sprintf("scale%d", round)
		cs, user := s.user(name)
		var l tally
		s.createImages(cs, name, n, 20, 4, &l)
		l.clean(t, "creates", false)
		waitUntil(t, time.Minute, "every task published", func() bool {
			var pending int
			err := s.db.QueryRow(`SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&pending)
			return err == nil && pending == 0
		})
		others := func() map[string]time.Duration {
			return map[string]time.Duration{"broker": cpuTime(t, s.kafka), "s3": cpuTime(t, s.s3),
				"serve": cpuTime(t, s.serves[0].process) + cpuTime(t, s.serves[1].process)}
		}
		before := others()
		var ws []*process
		for range workers {
			ws = append(ws, s.startWorker())
		}
		parts := s.waitWorkersAssigned(ws...)
		s.waitSettledImages(user, n, 10*time.Minute)
		var first, last time.Time
		if err := s.db.QueryRow(`
SELECT min(i.updated_at), max(i.updated_at) FROM product_images i JOIN products p ON p.id = i.product_id
WHERE p.user_id = $1`, user).Scan(&first, &last); err != nil {
			t.Fatal(err)
		}
		rate := float64(n-1) / last.Sub(first).Seconds()
		rates[workers] = append(rates[workers], rate)
		s.checkSettled(user, name, n)
		var cpu time.Duration
		for _, w := range ws {
			cpu += cpuTime(t, w)
		}
		var other []string
		for k, v := range others() {
			other = append(other, fmt.Sprintf("%s %.1f", k, float64((v-before[k]).Microseconds())/1000/float64(n)))
		}
		sort.Strings(other)
		t.Logf("CPU ms per image of the other processes: %s", strings.Join(other, ", "))
		t.Logf("%d worker process(es), partitions %v: %d images in %v, %.0f images/s; worker CPU %.1f ms per image (start-up included)",
			workers, parts, n, last.Sub(first).Round(time.Millisecond), rate, float64(cpu.Microseconds())/1000/float64(n))
		for i, w := range ws {
			if err := w.signal(t, syscall.SIGTERM); err != nil {
				t.Errorf("worker %d exited with %v after SIGTERM, want status 0", i, err)
			}
		}
	}
	mean := func(xs []float64) float64 {
		sum := 0.0
		for _, x := range xs {
			sum += x
		}
		return sum / float64(len(xs))
	}
	t.Logf("images/s: 1 worker %.0f, 2 workers %.0f: ratio %.2f (%d cores, load %s)", mean(rates[1]), mean(rates[2]),
		mean(rates[2])/mean(rates[1]), runtime.NumCPU(), loadAverage())
	s.workers[0], s.workers[1] = s.startWorker(), s.startWorker()
	s.waitWorkersAssigned(s.workers...)
}

// scaleServes checks that a change through one serve process is what the
// other answers next, and that a rate limit holds over both.
func scaleServes(t *testing.T, s *chaosStack) {
	s.t = t
	cs, _ := s.user("serves")
	r, err := cs[0].do(http.MethodPost, "/api/v1/products", `{"product_name":"Shared","product_price":1}`)
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("POST = %v %v, want 201", r.status, err)
	}
	var p struct{ ID string }
	_ = json.Unmarshal([]byte(r.body), &p)
	changes := chaosSize(50, 200)
	stale, worst := changeVisibility(t, cs, p.ID, changes)
	t.Logf("near copies on (redis.local_ttl at its default): %d changes through one serve process: the next read through the other was stale %d times; all seen within %v",
		changes, stale, worst.Round(time.Millisecond))
	// The invalidation reaches the other process through Redis pub/sub,
	// in milliseconds; its near copy's TTL (10 s) plays no part.
	if worst > 500*time.Millisecond {
		t.Errorf("a change took %v to be seen through the other process, more than the 500ms an announcement may take", worst)
	}
	var exact []apiClient
	for range 2 {
		sp := s.startServe(map[string]string{"PMS_REDIS_LOCAL_TTL": "0"})
		exact = append(exact, apiClient{base: "http://" + sp.api, key: cs[0].key})
		defer sp.signal(t, syscall.SIGTERM)
	}
	stale, worst = changeVisibility(t, exact, p.ID, changes)
	t.Logf("near copies off (redis.local_ttl 0): %d changes: the next read through the other process was stale %d times; all seen within %v",
		changes, stale, worst.Round(time.Millisecond))
	if stale > 0 {
		t.Errorf("with near copies off, %d of %d reads right after a change through the other process were stale", stale, changes)
	}
	rateLimitOverTwo(t, s)
}

// changeVisibility changes the product through one client and reads it
// through the other right after, changes times, alternating; it returns
// how often that read was stale, and the longest a change took to show.
func changeVisibility(t *testing.T, cs []apiClient, id string, changes int) (stale int, worst time.Duration) {
	t.Helper()
	path := "/api/v1/products/" + id
	for i := range changes {
		a, b := cs[i%2], cs[1-i%2]
		if r, err := b.do(http.MethodGet, path, ""); err != nil || r.status != http.StatusOK { // b holds it now
			t.Fatalf("GET = %v %v, want 200", r.status, err)
		}
		price := fmt.Sprintf(`"product_price":%d`, i+2+changes*int(time.Now().UnixNano()%1000))
		if r, err := a.do(http.MethodPatch, path, "{"+price+"}"); err != nil || r.status != http.StatusOK {
			t.Fatalf("PATCH = %v %v, want 200", r.status, err)
		}
		changed := time.Now()
		for n := 0; ; n++ {
			r, err := b.do(http.MethodGet, path, "")
			if err != nil || r.status != http.StatusOK {
				t.Fatalf("GET = %v %v, want 200", r.status, err)
			}
			if strings.Contains(r.body, price) {
				break
			}
			if n == 0 {
				stale++
			}
			if time.Since(changed) > time.Second {
				t.Fatalf("the other serve process still answers the old product 1s after the change")
			}
		}
		worst = max(worst, time.Since(changed))
	}
	return stale, worst
}

// rateLimitOverTwo sends 80 POSTs with one key through two serve processes
// at once, whose write limit is 2/s with a burst of 10: together they admit
// no more than one process would, and at most a lease's tokens but one
// fewer per process (leases of 2 here: a process may hold one it did not
// spend).
func rateLimitOverTwo(t *testing.T, s *chaosStack) {
	limited := []*serveProcess{}
	for range 2 {
		limited = append(limited, s.startServe(map[string]string{"PMS_RATE_LIMIT_WRITE_RATE": "2", "PMS_RATE_LIMIT_WRITE_BURST": "10",
			"PMS_RATE_LIMIT_READ_RATE": "2", "PMS_RATE_LIMIT_READ_BURST": "40"}))
	}
	other, _ := s.user("serves-limited")
	// Writes at a burst of 10 go to Redis each (leases of 2); reads at 40
	// are taken 8 at a time, the next lease ordered ahead with 2 left.
	var created string
	for _, c := range []struct {
		method, path, body string
		n, burst           int
		status             int
		leftEarly          int // leased tokens the other process may hold unspent
	}{
		{http.MethodPost, "/api/v1/products", `{"product_name":"Limited","product_price":1}`, 80, 10, http.StatusCreated, 2},
		{http.MethodGet, "", "", 200, 40, http.StatusOK, 10},
	} {
		path := c.path
		if path == "" {
			path = "/api/v1/products/" + created
		}
		var l tally
		start := time.Now()
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				api := apiClient{base: "http://" + limited[g%2].api, key: other[0].key}
				for range c.n / 4 {
					l.add(api.do(c.method, path, c.body))
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		allowed := c.burst + int(2*elapsed.Seconds()) + 1
		t.Logf("%d %ss with one key through two serve processes (rate 2/s, burst %d) in %v: %v; at most %d allowed",
			c.n, c.method, c.burst, elapsed.Round(time.Millisecond), &l, allowed)
		if n := l.count(c.status); n > allowed || n < c.burst-c.leftEarly {
			t.Errorf("%ss: %d answered %d, want %d to %d: the limit must hold over both processes together",
				c.method, n, c.status, c.burst-c.leftEarly, allowed)
		}
		if n := l.count(http.StatusTooManyRequests); n+l.count(c.status) != c.n {
			t.Errorf("%ss: %v, want only %d and 429", c.method, &l, c.status)
		}
		if len(l.created) > 0 {
			created = l.created[0] // for the reads
		}
	}
	for _, sp := range limited {
		_ = sp.signal(t, syscall.SIGTERM)
	}
}

// scaleRebalance starts a third worker while tasks run and stops it again
// (SIGTERM) before they are done: two rebalances, nothing lost.
func scaleRebalance(t *testing.T, s *chaosStack) {
	s.t = t
	n := chaosSize(600, 3000)
	cs, user := s.user("rebalance")
	var l tally
	done := make(chan struct{})
	go func() { defer close(done); s.createImages(cs, "rebalance", n, 20, 4, &l) }()
	s.waitProgress(user, n/4, 5*time.Minute)
	third := s.startWorker()
	parts := s.waitWorkersAssigned(append(s.workers, third)...)
	t.Logf("a third worker joined at %v: partitions %v", s.counts(user), parts)
	s.waitProgress(user, n/2, 5*time.Minute)
	if err := third.signal(t, syscall.SIGTERM); err != nil {
		t.Errorf("the third worker exited with %v after SIGTERM, want status 0", err)
	}
	parts = s.waitWorkersAssigned(s.workers...)
	t.Logf("the third worker left at %v: partitions %v", s.counts(user), parts)
	<-done
	l.clean(t, "creates", false)
	c := s.waitSettledImages(user, n, 10*time.Minute)
	dups, _ := s.checkSettled(user, "rebalance", n)
	t.Logf("%v; %d sources fetched again (duplicates)", c, dups)
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(t *testing.T, p *process) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// The fields after the command's ")" start with the state (field 3);
	// utime and stime are fields 14 and 15, in clock ticks (100 a second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// loadAverage returns the machine's 1-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
