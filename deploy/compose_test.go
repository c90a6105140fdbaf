package deploy_test

import (
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeFile reads docker-compose.yml (no Docker engine runs here, so
// it is read, not run): the real dependencies are there, migrate waits for
// PostgreSQL, serve and worker wait for migrate to finish and the topics to
// exist, and every pms service runs the image the Dockerfile builds.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image     string                       `yaml:"image"`
			Build     map[string]string            `yaml:"build"`
			Command   []string                     `yaml:"command"`
			DependsOn map[string]map[string]string `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for name, image := range map[string]string{"postgres": "postgres:", "redis": "redis:", "kafka": "apache/kafka:", "minio": "minio/minio:"} {
		if s, ok := f.Services[name]; !ok || len(s.Image) < len(image) || s.Image[:len(image)] != image {
			t.Errorf("service %s runs %q, want an image %s…", name, s.Image, image)
		}
	}
	waits := map[string]map[string]string{
		"migrate": {"postgres": "service_healthy"},
		"serve":   {"migrate": "service_completed_successfully", "kafka-init": "service_completed_successfully"},
		"worker":  {"migrate": "service_completed_successfully", "kafka-init": "service_completed_successfully", "minio": "service_healthy"},
	}
	for name, deps := range waits {
		s := f.Services[name]
		if s.Build["dockerfile"] != "Dockerfile" || s.Image != "pms:compose" {
			t.Errorf("service %s: image %q, build %v; want pms:compose built from the Dockerfile", name, s.Image, s.Build)
		}
		for dep, cond := range deps {
			if s.DependsOn[dep]["condition"] != cond {
				t.Errorf("service %s waits for %s with %q, want %s", name, dep, s.DependsOn[dep]["condition"], cond)
			}
		}
	}
	for name, cmd := range map[string]string{"migrate": "migrate", "serve": "serve", "worker": "worker"} {
		if !slices.Contains(f.Services[name].Command, cmd) {
			t.Errorf("service %s runs %v, want pms %s", name, f.Services[name].Command, cmd)
		}
	}
}
