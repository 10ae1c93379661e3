package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// StatusClasses counts responses by status class; Errors got none.
type StatusClasses struct {
	C1xx   int64 `json:"1xx"`
	C2xx   int64 `json:"2xx"`
	C3xx   int64 `json:"3xx"`
	C4xx   int64 `json:"4xx"`
	C5xx   int64 `json:"5xx"`
	Errors int64 `json:"errors"`
}

// Report is what a run measured. Latency runs from the intended send time in
// open loop (Rate > 0) and from the actual send in closed loop.
type Report struct {
	Target      string `json:"target"`
	Mix         string `json:"mix"`
	Clients     int    `json:"clients"`
	Connections int    `json:"connections"`
	// Rate is the open-loop target in requests/s; 0 means closed loop, flat out.
	Rate       float64          `json:"rate"`
	Elapsed    float64          `json:"elapsed_s"`
	Requests   int64            `json:"requests"`
	Status     StatusClasses    `json:"status"`
	Codes      map[string]int64 `json:"codes"`
	FirstError string           `json:"first_error,omitempty"`
	Throughput float64          `json:"throughput_rps"`
	// Items are the spans and events ingest requests carried that the
	// server took; ItemThroughput is their rate.
	Items          int64   `json:"items,omitempty"`
	ItemThroughput float64 `json:"items_per_s,omitempty"`
	Latency        Summary `json:"latency"`
	// SendLag (open loop) is how late requests left against their intended
	// time: large values mean the generator or its connections fell behind.
	SendLag   *Summary         `json:"send_lag,omitempty"`
	Freshness *FreshnessReport `json:"freshness,omitempty"`
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func summaryLine(s Summary) string {
	return fmt.Sprintf("p50 %.2fms  p90 %.2fms  p99 %.2fms  p99.9 %.2fms  max %.2fms  (mean %.2fms, n=%d)",
		s.P50, s.P90, s.P99, s.P999, s.Max, s.Mean, s.Count)
}

// WriteText writes r for people.
func (r *Report) WriteText(w io.Writer) error {
	mode := "closed loop, flat out"
	if r.Rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f req/s", r.Rate)
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("target      %s  mix %s  clients %d  connections %d  %s\n", r.Target, r.Mix, r.Clients, r.Connections, mode)
	p("requests    %d in %.2fs = %.0f req/s\n", r.Requests, r.Elapsed, r.Throughput)
	if r.Items > 0 {
		p("items       %d spans or events taken = %.0f items/s\n", r.Items, r.ItemThroughput)
	}
	p("status      2xx %d  3xx %d  4xx %d  5xx %d  1xx %d  errors %d\n",
		r.Status.C2xx, r.Status.C3xx, r.Status.C4xx, r.Status.C5xx, r.Status.C1xx, r.Status.Errors)
	if len(r.Codes) > 0 {
		codes := make([]string, 0, len(r.Codes))
		for c := range r.Codes {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		p("codes      ")
		for _, c := range codes {
			p(" %s:%d", c, r.Codes[c])
		}
		p("\n")
	}
	if r.FirstError != "" {
		p("first error %s\n", r.FirstError)
	}
	from := "actual"
	if r.Rate > 0 {
		from = "intended"
	}
	p("latency     %s  [from %s send]\n", summaryLine(r.Latency), from)
	if r.SendLag != nil {
		p("send lag    %s\n", summaryLine(*r.SendLag))
	}
	if f := r.Freshness; f != nil {
		p("freshness   %s  [from %s]\n", summaryLine(f.Seen), f.Since)
		p("            probes %d  timed out %d  skipped (identities busy) %d  failed %d  polls %d (%d failed)\n",
			f.Probes, f.TimedOut, f.Skipped, f.Failed, f.Polls, f.PollErrors)
	}
	return nil
}
