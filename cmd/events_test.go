package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Topic of config.yaml the events go to.
const eventsTopic = "pms.events"

// cloudEvent is what the test reads of an event, written from the
// CloudEvents 1.0 spec rather than from pms's types.
type cloudEvent struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Subject         string `json:"subject"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype"`
	ProductVersion  int    `json:"productversion"`
	CorrelationID   string `json:"correlationid"`
	Data            struct {
		ProductID string `json:"product_id"`
		Version   int    `json:"version"`
		Image     *struct {
			SourceURL string `json:"source_url"`
			Status    string `json:"status"`
		} `json:"image"`
	} `json:"data"`
}

// readEvents reads want events from topic with a franz-go consumer group
// of its own, as any other reader of pms.events would, and returns them
// by record key in partition order.
func readEvents(t *testing.T, brokers []string, want int, d time.Duration) (map[string][]cloudEvent, map[string]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(eventsTopic),
		kgo.ConsumerGroup(fmt.Sprintf("events-test-%d", time.Now().UnixNano())),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	byKey := map[string][]cloudEvent{}
	headers := map[string]string{}
	for n := 0; n < want; {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d events within %v", n, want, d)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			var ev cloudEvent
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatalf("event at %s/%d@%d is not JSON: %v: %s", r.Topic, r.Partition, r.Offset, err, r.Value)
			}
			for _, h := range r.Headers {
				headers[h.Key] = string(h.Value)
			}
			byKey[string(r.Key)] = append(byKey[string(r.Key)], ev)
			n++
		})
	}
	return byKey, headers
}

// TestEventsScriptedRun drives products through create, image processing
// (one image fails), update and delete over HTTP and reads pms.events back
// with a franz-go consumer: every change is there once, per product in the
// order it happened, as a CloudEvent carrying the product's version and
// the request id.
func TestEventsScriptedRun(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	src := newSource(t, func(w http.ResponseWriter, req *http.Request, n int) {
		if strings.HasPrefix(req.URL.Path, "/gone") {
			http.NotFound(w, req)
			return
		}
		serve(noisyPNG(t, uint64(len(req.URL.Path))))(w, req, n)
	})
	s, _ := startAll(t, r.env(nil))

	const products = 4
	ids := make([]string, products)
	for i := range ids {
		ids[i] = createProduct(t, s, fmt.Sprintf("events-%d", i), src.URL(fmt.Sprintf("/a%d.png", i)), src.URL(fmt.Sprintf("/gone%d.png", i)))
	}
	for i, id := range ids {
		waitSettled(t, s, id, 30*time.Second)
		if code := s.do(t, http.MethodPatch, "/api/v1/products/"+id, fmt.Sprintf(`{"product_name":"Renamed %d"}`, i), "", nil); code != http.StatusOK {
			t.Fatalf("PATCH product %s = %d, want 200", id, code)
		}
	}
	deleted := ids[0]
	if code := s.do(t, http.MethodDelete, "/api/v1/products/"+deleted, "", "events-delete", nil); code != http.StatusNoContent {
		t.Fatalf("DELETE product %s = %d, want 204", deleted, code)
	}

	// created, image.ready, image.failed, images_ready, updated (+ deleted)
	byKey, headers := readEvents(t, r.kafka.Brokers(), products*5+1, 60*time.Second)
	if got := headers["content-type"]; got != "application/cloudevents+json" {
		t.Errorf("content-type header = %q, want application/cloudevents+json (structured mode)", got)
	}
	seen := map[string]bool{}
	for i, id := range ids {
		evs := byKey[id]
		var types []string
		for _, ev := range evs {
			types = append(types, ev.Type)
			if seen[ev.ID] {
				t.Errorf("event id %s seen twice", ev.ID)
			}
			seen[ev.ID] = true
			if ev.SpecVersion != "1.0" || ev.Source == "" || ev.Subject != id || ev.Data.ProductID != id || ev.Time == "" {
				t.Errorf("product %s event %+v: not a CloudEvent about it", id, ev)
			}
			if ev.ProductVersion != ev.Data.Version {
				t.Errorf("event %s: productversion %d, data.version %d", ev.ID, ev.ProductVersion, ev.Data.Version)
			}
		}
		// The two image results may come in either order.
		images := strings.Join(types[1:3], ",")
		if images == "image.failed,image.ready" {
			images = "image.ready,image.failed"
		}
		got := strings.Join(append([]string{types[0], images}, types[3:]...), ",")
		want := "product.created,image.ready,image.failed,product.images_ready,product.updated"
		if id == deleted {
			want += ",product.deleted"
		}
		if got != want {
			t.Errorf("product %s events = %s, want %s", id, got, want)
			continue
		}
		// Versions: created 1, then rising with each event (the worker's
		// attempts bump it too), images_ready at its image event's.
		if evs[0].ProductVersion != 1 {
			t.Errorf("product %s created at version %d, want 1", id, evs[0].ProductVersion)
		}
		for j := 1; j < len(evs); j++ {
			v, before := evs[j].ProductVersion, evs[j-1].ProductVersion
			if evs[j].Type == "product.images_ready" && v != before || evs[j].Type != "product.images_ready" && v <= before {
				t.Errorf("product %s event %d (%s) at version %d after %d: want a higher one, or the same for images_ready", id, j, evs[j].Type, v, before)
			}
		}
		if c := evs[0].CorrelationID; c != fmt.Sprintf("events-%d", i) {
			t.Errorf("product %s created event correlationid = %q, want the request id events-%d", id, c, i)
		}
		if c := evs[1].CorrelationID; c != fmt.Sprintf("events-%d", i) {
			t.Errorf("product %s image event correlationid = %q, want the request id of the create", id, c)
		}
		if id == deleted && evs[5].CorrelationID != "events-delete" {
			t.Errorf("deleted event correlationid = %q, want events-delete", evs[5].CorrelationID)
		}
	}
}
