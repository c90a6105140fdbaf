package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// kubernetesModule holds the OpenAPI description the manifests are checked
// against: Kubernetes 1.31's own api/openapi-spec/swagger.json, fetched
// with go mod download from the module proxy.
const kubernetesModule = "k8s.io/kubernetes@v1.31.4"

// TestKubernetesManifests builds deploy/k8s with kustomize and checks every
// object with kubeconform -strict (no unknown fields, the right types, the
// required fields) against JSON schemas made from Kubernetes 1.31's OpenAPI
// description, as openapi2jsonschema makes them for kubeconform's own
// registry (which this machine cannot reach).
func TestKubernetesManifests(t *testing.T) {
	kustomize, kubeconform := tool(t, "kustomize"), tool(t, "kubeconform")
	built := runTool(t, ".", kustomize, "build", "k8s")
	schemas := t.TempDir()
	writeSchemas(t, schemas, built)
	manifests := filepath.Join(t.TempDir(), "pms.yaml")
	if err := os.WriteFile(manifests, []byte(built), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runTool(t, ".", kubeconform, "-strict", "-summary", "-output", "text",
		"-schema-location", schemas+"/{{ .ResourceKind }}{{ .KindSuffix }}.json", manifests)
	t.Log(out)
	for _, kind := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "ConfigMap", "Secret"} {
		if !strings.Contains(built, "kind: "+kind+"\n") {
			t.Errorf("kustomize build k8s has no %s", kind)
		}
	}
	if !regexp.MustCompile(`Valid: 11, Invalid: 0, Errors: 0, Skipped: 0`).MatchString(out) {
		t.Errorf("kubeconform did not find the 11 objects valid:\n%s", out)
	}
}

// writeSchemas writes, for each apiVersion and kind in manifests, a
// standalone strict JSON schema named as kubeconform looks it up.
func writeSchemas(t *testing.T, dir, manifests string) {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", kubernetesModule).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", kubernetesModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(mod.Dir, "api", "openapi-spec", "swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	defs := map[string]any{}
	for name, d := range spec.Definitions {
		defs[name] = strict(d)
	}
	want := map[string]bool{}
	for _, doc := range strings.Split(manifests, "\n---\n") {
		var obj struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("kustomize build output: %v", err)
		}
		want[obj.APIVersion+" "+obj.Kind] = true
	}
	for name, d := range spec.Definitions {
		gvks, _ := d["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk := g.(map[string]any)
			group, version, kind := gvk["group"].(string), gvk["version"].(string), gvk["kind"].(string)
			apiVersion := version
			if group != "" {
				apiVersion = group + "/" + version
			}
			if !want[apiVersion+" "+kind] {
				continue
			}
			file := strings.ToLower(kind) + "-" + strings.ToLower(version)
			if group != "" {
				file = strings.ToLower(kind) + "-" + strings.ToLower(strings.Split(group, ".")[0]) + "-" + strings.ToLower(version)
			}
			schema := map[string]any{"$ref": "#/definitions/" + name, "definitions": defs}
			data, err := json.Marshal(schema)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, file+".json"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			delete(want, apiVersion+" "+kind)
		}
	}
	for k := range want {
		t.Errorf("Kubernetes 1.31 has no schema for %s", k)
	}
}

// strict rewrites an OpenAPI v2 schema into JSON schema as
// openapi2jsonschema -strict does: objects with properties take no others,
// and int-or-string takes either. The $refs point into definitions, which
// every schema carries whole.
func strict(v any) any {
	switch s := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range s {
			if strings.HasPrefix(k, "x-kubernetes-") {
				continue
			}
			out[k] = strict(val)
		}
		if out["format"] == "int-or-string" {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		}
		if _, ok := out["properties"]; ok {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(s))
		for i, e := range s {
			out[i] = strict(e)
		}
		return out
	}
	return v
}
