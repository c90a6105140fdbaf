package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tool returns the path of a checker that `make deploy-tools` installs
// with go install, or skips the test saying how to get it (in CI, where
// make check-deploy installs them first, it fails instead).
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed: run make deploy-tools", name)
	}
	t.Skipf("SKIPPED: %s is not installed (make deploy-tools installs it); nothing was checked", name)
	return ""
}

func runTool(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules checks the alert rules with promtool and runs their unit
// tests (alerts_test.yml): each alert fires on the series that should
// raise it, with its labels and annotations.
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool")
	t.Log(runTool(t, "prometheus", promtool, "check", "rules", "alerts.yml"))
	t.Log(runTool(t, "prometheus", promtool, "test", "rules", "alerts_test.yml"))
}

// TestDashboard reads the Grafana dashboard and has promtool parse every
// query in it, as recording rules with Grafana's variables filled in.
func TestDashboard(t *testing.T) {
	promtool := tool(t, "promtool")
	b, err := os.ReadFile("grafana/pms-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	queries := 0
	for i, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for j, tg := range p.Targets {
			expr := strings.NewReplacer("$__rate_interval", "5m", "$job", "pms.*").Replace(tg.Expr)
			q, _ := json.Marshal(expr) // a JSON string is a YAML string
			fmt.Fprintf(&rules, "      - record: dashboard:panel%d_%d\n        expr: %s\n", i, j, q)
			queries++
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runTool(t, ".", promtool, "check", "rules", file)
	if !strings.Contains(out, fmt.Sprintf("SUCCESS: %d rules found", queries)) {
		t.Errorf("promtool on the dashboard's %d queries:\n%s", queries, out)
	}
}
