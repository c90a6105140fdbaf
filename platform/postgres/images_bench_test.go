package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/platform/postgres"
	"github.com/pms-dev/pms/platform/postgres/postgrestest"
	"github.com/pms-dev/pms/product"
	"github.com/pms-dev/pms/product/account"
)

// BenchmarkImageAttempt measures what the worker asks of PostgreSQL for
// one image that succeeds at its first attempt: Begin (the attempt
// counted, the image processing) and Ready (its variants recorded), one
// after the other, as a worker does around the image's download, decode
// and upload. Products are created 100 at a time, off the clock.
func BenchmarkImageAttempt(b *testing.B) {
	ctx := context.Background()
	db := postgrestest.New(b)
	svc := product.NewService(newProductStore(b, db, postgres.DefaultIdempotencyConfig()), imageTasks, product.Policy{})
	u, err := account.NewService(postgres.NewAccountStore(db)).CreateUser(ctx, uuid.NewString()+"@example.com", "Bench", false)
	if err != nil {
		b.Fatal(err)
	}
	as := account.Caller{UserID: u.ID}
	results := postgres.NewImageResults(db)
	var queue []product.Product
	b.ResetTimer()
	for range b.N {
		if len(queue) == 0 {
			b.StopTimer()
			for range 100 {
				p, _, err := svc.Create(ctx, as, product.Draft{UserID: u.ID, Name: "Lamp", Price: 100, ImageURLs: []string{"https://example.com/bench.jpg"}}, "")
				if err != nil {
					b.Fatal(err)
				}
				queue = append(queue, p)
			}
			b.StartTimer()
		}
		task := taskOf(queue[0], 0)
		queue = queue[1:]
		if _, err := results.Begin(ctx, task); err != nil {
			b.Fatal(err)
		}
		if err := results.Ready(ctx, task, mainOnly("http://127.0.0.1/bench.jpg")); err != nil {
			b.Fatal(err)
		}
	}
}
