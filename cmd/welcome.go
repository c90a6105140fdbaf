package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pms-dev/pms/platform/httpapi"
	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/redis"
	"github.com/pms-dev/pms/product/account"
)

// devUserEmail is the user `pms all --welcome` makes for the development key.
const devUserEmail = "dev@pms.localhost"

// devKeyFile is the file in dev.state_dir that keeps the development key.
const devKeyFile = "dev-api-key"

// devKey returns the development API key kept in dev.state_dir, making the
// development user and a key the first time (or when the database no longer
// knows the kept key, e.g. after its data was removed). The key is a
// secret of the development database only; it is kept in a file only its
// owner can read.
func (a *app) devKey(ctx context.Context, auth *account.Service) (key, file string, err error) {
	file = filepath.Join(a.cfg.Dev.StateDir, devKeyFile)
	if b, err := os.ReadFile(file); err == nil {
		key = strings.TrimSpace(string(b))
		if _, err := auth.Authenticate(ctx, key); err == nil {
			return key, file, nil
		} else if !errors.Is(err, account.ErrUnauthenticated) {
			return "", "", fmt.Errorf("check the development key in %s: %w", file, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("read the development key: %w", err)
	}
	u, err := auth.UserByEmail(ctx, devUserEmail)
	if errors.Is(err, account.ErrUserNotFound) {
		u, err = auth.CreateUser(ctx, devUserEmail, "Development", false)
	}
	if err != nil {
		return "", "", fmt.Errorf("make the development user: %w", err)
	}
	key, _, err = auth.CreateKey(ctx, u.ID)
	if err != nil {
		return "", "", fmt.Errorf("make the development key: %w", err)
	}
	if err := os.MkdirAll(a.cfg.Dev.StateDir, 0o755); err != nil {
		return "", "", fmt.Errorf("keep the development key: %w", err)
	}
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("keep the development key: %w", err)
	}
	return key, file, nil
}

// welcome is what `make run` prints once pms is ready: where the API, its
// docs and the metrics are, the development key and a first request.
type welcome struct {
	API, Ops, Key, KeyFile, SampleImage string

	out   io.Writer
	ready func(context.Context) bool
}

// welcome binds the API and operator listeners (so their addresses are
// known), makes sure of the development key and returns the part that
// prints the welcome once pms is ready.
func (a *app) welcome(ctx context.Context, out io.Writer, db *postgres.DB, cache *redis.Client, api, ops *httpapi.Server) (*welcome, error) {
	for _, l := range []*httpapi.Server{api, ops} {
		if err := l.Listen(); err != nil {
			return nil, err
		}
	}
	key, file, err := a.devKey(ctx, a.accounts(db, cache))
	if err != nil {
		return nil, err
	}
	return &welcome{API: api.Addr(), Ops: ops.Addr(), Key: key, KeyFile: file, SampleImage: a.cfg.Dev.SampleImageURL,
		out: out, ready: ops.Ready}, nil
}

// Run waits until pms is ready (or 30 s, whichever is first), so that the
// welcome ends the start-up, prints it and waits for ctx to end.
func (w *welcome) Run(ctx context.Context) error {
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !w.ready(wait) && wait.Err() == nil {
		select {
		case <-wait.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if ctx.Err() == nil {
		w.print(w.out)
	}
	<-ctx.Done()
	return nil
}

func (w welcome) print(out io.Writer) {
	api, ops := "http://"+browsable(w.API), "http://"+browsable(w.Ops)
	body := fmt.Sprintf(`{"product_name":"Desk lamp","product_description":"Brass, 40 cm","product_price":49.90,"product_images":[%q]}`, w.SampleImage)
	fmt.Fprintf(out, `
pms is running (stop it with Ctrl-C, then 'make stop' for PostgreSQL and Redis)
  API       %[1]s/api/v1
  docs      %[1]s/docs   (OpenAPI 3.1: %[1]s/openapi.json, %[1]s/openapi.yaml)
  metrics   %[2]s/metrics   ready: %[2]s/ready
  API key   %[3]s
            (user %[4]s, kept in %[5]s)
Create a product, then read it back with the "id" it answers:
  curl -s %[1]s/api/v1/products -H 'Authorization: Bearer %[3]s' -H 'Content-Type: application/json' -d '%[6]s'
  curl -s %[1]s/api/v1/products/ID -H 'Authorization: Bearer %[3]s'

`, api, ops, w.Key, devUserEmail, w.KeyFile, body)
}

// browsable turns a listen address into one to type: a wildcard host
// becomes localhost.
func browsable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
