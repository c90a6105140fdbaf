// Package migrations embeds the database schema migrations, numbered
// NNNN_what.sql goose files applied in order.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
