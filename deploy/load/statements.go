package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// statement is one query's share of a run, from pg_stat_statements.
type statement struct {
	query   string
	calls   float64       // per request
	exec    time.Duration // PostgreSQL's execution time, per request
	planned float64       // plans per request
}

// resetStatements clears pg_stat_statements before a measured run.
func (e *environment) resetStatements(ctx context.Context) error {
	_, err := e.sql.ExecContext(ctx, "SELECT pg_stat_statements_reset()")
	return err
}

// statements returns what PostgreSQL ran for the load database since the
// reset, per request, busiest first; the command's own queries left out.
func (e *environment) statements(ctx context.Context, requests int) ([]statement, error) {
	rows, err := e.sql.QueryContext(ctx, `
		SELECT query, calls, total_exec_time, plans FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND query NOT LIKE '%pg_stat_statements%'
		ORDER BY calls DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := float64(max(requests, 1))
	var out []statement
	for rows.Next() {
		var q string
		var calls, plans int64
		var ms float64
		if err := rows.Scan(&q, &calls, &ms, &plans); err != nil {
			return nil, err
		}
		out = append(out, statement{
			query:   strings.Join(strings.Fields(q), " "),
			calls:   float64(calls) / n,
			exec:    time.Duration(ms * float64(time.Millisecond) / n),
			planned: float64(plans) / n,
		})
	}
	return out, rows.Err()
}

// statementsSummary says how many statements a request cost and which.
func statementsSummary(ss []statement) (perRequest float64, top string) {
	var b strings.Builder
	for i, s := range ss {
		perRequest += s.calls
		if i < 6 && s.calls >= 0.01 {
			q := s.query
			if len(q) > 90 {
				q = q[:90] + "…"
			}
			fmt.Fprintf(&b, "\n    %5.2f × %6.0f µs  %s", s.calls, float64(s.exec.Microseconds())/max(s.calls, 1e-9), q)
		}
	}
	return perRequest, b.String()
}
