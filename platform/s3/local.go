package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"
)

// LocalServer is an S3-compatible server (gofakes3) that keeps buckets and
// objects in a directory, for development only: it checks no signatures,
// serves every object to anyone who asks (so a browser can open the URLs an
// Uploader returns), and ignores Cache-Control. It listens on loopback only.
type LocalServer struct {
	ln  net.Listener
	srv *http.Server
}

// NewLocalServer starts listening on addr, which must be a loopback address
// ("127.0.0.1:0" picks a free port), and keeps data in dir, creating it if
// needed. Buckets are under dir/buckets, one directory per bucket and one
// file per object; metadata (Content-Type) is under dir/metadata. An
// Uploader with CreateBucket set creates its bucket. Call Run to serve.
func NewLocalServer(dir string, addr string) (*LocalServer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("local s3 address: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("local s3 address %q: must be a loopback address", addr)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create local s3 directory: %w", err)
	}
	backend, err := s3afero.MultiBucket(afero.NewBasePathFs(afero.NewOsFs(), dir))
	if err != nil {
		return nil, fmt.Errorf("open local s3 directory %s: %w", dir, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for local s3: %w", err)
	}
	return &LocalServer{
		ln: ln,
		srv: &http.Server{
			Handler:           gofakes3.New(backend).Server(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
		},
	}, nil
}

// Addr returns the address the server listens on, with the actual port.
func (s *LocalServer) Addr() string { return s.ln.Addr().String() }

// URL returns the server's base URL, to use as Config.Endpoint (with
// UsePathStyle).
func (s *LocalServer) URL() string { return "http://" + s.Addr() }

// Run serves until ctx ends, then shuts down, giving requests in flight a few
// seconds, and returns nil. It returns an error only if serving fails.
func (s *LocalServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve local s3: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down local s3: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve local s3: %w", err)
	}
	return nil
}
