package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"
)

// imageTopic is where pms publishes image tasks (kafka.topic's default).
const imageTopic = "pms.image-tasks"

// writeCounts is what the POST targets wrote, counted in PostgreSQL and Kafka.
type writeCounts struct {
	products, images, unpublished int64
	published                     int64 // Kafka: the sum of the topic's partition offsets
}

func (e *environment) writes(ctx context.Context) (writeCounts, error) {
	var c writeCounts
	err := e.sql.QueryRowContext(ctx, `
		SELECT (SELECT count(*) FROM products WHERE product_description = 'Created by make load'),
		       (SELECT count(*) FROM product_images i JOIN products p ON p.id = i.product_id
		         WHERE p.product_description = 'Created by make load'),
		       (SELECT count(*) FROM outbox WHERE published_at IS NULL)`).
		Scan(&c.products, &c.images, &c.unpublished)
	if err != nil {
		return c, err
	}
	c.published, err = e.topicOffsets()
	return c, err
}

// topicOffsets returns how many messages the image topic holds.
func (e *environment) topicOffsets() (int64, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	client, err := sarama.NewClient([]string{e.brokers}, cfg)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	parts, err := client.Partitions(imageTopic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		off, err := client.GetOffset(imageTopic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		n += off
	}
	return n, nil
}

// checkWrites waits for the relay to publish what a POST run wrote and
// checks that every 201 left its product and its image, and that each
// image's task message reached Kafka (the outbox keeps only what is
// pending; older binaries keep published rows, which are not counted). Requests in flight when wrk stopped may have
// written too, so up to -c more products are allowed.
func (e *environment) checkWrites(ctx context.Context, before writeCounts, r result) (string, error) {
	created := int64(r.requests - r.non2xx)
	after, err := e.settledWrites(ctx)
	if err != nil {
		return "", err
	}
	products := after.products - before.products
	images := after.images - before.images
	published := after.published - before.published
	switch {
	case r.non2xx > 0 || r.errors > 0:
		return "", fmt.Errorf("%d answers were not 2xx and %d requests failed", r.non2xx, r.errors)
	case products < created || products > created+int64(e.o.conns):
		return "", fmt.Errorf("%d created answers but %d products written", created, products)
	case images != products || published < images:
		return "", fmt.Errorf("%d products, %d images, %d messages on Kafka: want one each", products, images, published)
	}
	return fmt.Sprintf("checked: %d products and images, %d messages on Kafka (%d duplicates)",
		products, published, published-images), nil
}

// settledWrites waits until the relay has published every outbox row, and
// counts the writes then.
func (e *environment) settledWrites(ctx context.Context) (writeCounts, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := e.writes(ctx)
		if err != nil || c.unpublished == 0 {
			return c, err
		}
		if time.Now().After(deadline) {
			e.logActivity(ctx)
			return c, fmt.Errorf("%d outbox rows still unpublished after 30 s", c.unpublished)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createGetProducts gives every user one product, through the API, for the
// GET targets, and keeps the first one's JSON for the bare Echo handler.
func (e *environment) createGetProducts(ctx context.Context) error {
	if e.users[0].product != "" {
		return nil
	}
	progress("creating a product for each of %d users through the API", len(e.users))
	_, err := withServer(ctx, e, pmsServer("pms"), func(_ *proc, base string) (result, error) {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for i := range e.users {
			g.Go(func() error {
				var p struct {
					ID string `json:"id"`
				}
				code, _, err := call(gctx, http.MethodPost, base+"/api/v1/products", e.users[i].key,
					`{"product_name":"Cached lamp","product_description":"Read by make load","product_price":12.5,`+
						`"product_images":["http://127.0.0.1:9/lamp.jpg"]}`, &p)
				if err != nil || code != http.StatusCreated {
					return fmt.Errorf("POST for user %d: %d %v", i, code, err)
				}
				e.users[i].product = p.ID
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return result{}, err
		}
		code, body, err := call(ctx, http.MethodGet, base+"/api/v1/products/"+e.users[0].product, e.users[0].key, "", nil)
		if err != nil || code != http.StatusOK {
			return result{}, fmt.Errorf("GET: %d %v", code, err)
		}
		e.productBody = body
		return result{}, nil
	})
	return err
}

// productJSON returns what pms answers a GET of the first user's product.
func (e *environment) productJSON(ctx context.Context) ([]byte, error) {
	if err := e.createGetProducts(ctx); err != nil {
		return nil, err
	}
	return e.productBody, nil
}

// call sends one request with key and decodes a JSON answer into out.
func call(ctx context.Context, method, url, key, body string, out any) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, err
	}
	if out != nil {
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(out); err != nil {
			return res.StatusCode, data, err
		}
	}
	return res.StatusCode, data, nil
}

// runOut runs a program to its end and returns what it printed.
func runOut(ctx context.Context, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// logActivity prints what PostgreSQL's sessions are doing and what each
// waits for, and copies PostgreSQL's log into the run's directory (kept when
// the run fails), to see why the relay stalls.
func (e *environment) logActivity(ctx context.Context) {
	e.copyPostgresLog()
	rows, err := e.sql.QueryContext(ctx, `
		SELECT pid, coalesce(state, ''), coalesce(wait_event_type || ':' || wait_event, ''),
		       coalesce(extract(epoch FROM now() - xact_start)::text, ''), pg_blocking_pids(pid)::text,
		       left(regexp_replace(query, '\s+', ' ', 'g'), 160)
		FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		progress("pg_stat_activity: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		var state, wait, age, blockers, query string
		if err := rows.Scan(&pid, &state, &wait, &age, &blockers, &query); err != nil {
			progress("pg_stat_activity: %v", err)
			return
		}
		progress("pg %d %s wait=%s xact_age=%s blocked_by=%s %s", pid, state, wait, age, blockers, query)
	}
}

// copyPostgresLog copies PostgreSQL's log into the run's directory.
func (e *environment) copyPostgresLog() {
	if e.pgLog != "" {
		if b, err := os.ReadFile(e.pgLog); err == nil {
			_ = os.WriteFile(filepath.Join(e.dir, "postgres.log"), b, 0o644)
		}
	}
}
