package views

import (
	"time"

	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
)

// flushSlack is how long after a bucket's grace the aggregator may still be
// writing to it: it flushes about once a second.
const flushSlack = 2 * time.Second

// EndpointRows are the endpoints table's rows as an EndpointAnswers reads
// them: from a local view, or from the workers owning them.
type EndpointRows interface {
	// Row is the row of key (nil if none).
	Row(key string) (*endpoints.Row, error)
	// Buckets are endpoint's bucket rows of step with calls whose start
	// lies in [fromUnix, toUnix], oldest first, Step and Start set.
	Buckets(endpoint string, step time.Duration, fromUnix, toUnix int64) ([]*endpoints.Row, error)
}

// EndpointAnswers answers an EndpointReader's reads of one endpoint from
// its rows, so a local view and the routed reads answer alike: summaries
// are made where the rows are read, and a range merges the rows' sketches.
type EndpointAnswers struct {
	Rows EndpointRows
	// Config is the windowing the endpoints group keeps.
	Config windows.Config
	Now    func() time.Time
}

// Windows is the windowing the endpoints group keeps.
func (a EndpointAnswers) Windows() windows.Config { return a.Config }

// Endpoint is endpoint's all-time summary, from its row.
func (a EndpointAnswers) Endpoint(endpoint string) (endpoints.Summary, bool, error) {
	r, err := a.Rows.Row(endpoint)
	if err != nil || r == nil {
		return endpoints.Summary{}, false, err
	}
	return endpoints.Summarize(endpoint, r), true, nil
}

// EndpointSeries summarizes endpoint's bucket rows of step in [from, to].
func (a EndpointAnswers) EndpointSeries(endpoint string, step time.Duration, from, to time.Time) ([]EndpointBucket, error) {
	now := a.Now()
	if err := a.Config.CheckSeries(step, from, to, now); err != nil {
		return nil, err
	}
	rows, err := a.buckets(endpoint, step, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]EndpointBucket, 0, len(rows))
	for _, r := range rows {
		out = append(out, EndpointBucket{Start: r.Start, Step: step, Summary: endpoints.Summarize(endpoint, r),
			Final: !now.Before(r.Start.Add(step + a.Config.Grace + flushSlack))})
	}
	return out, nil
}

func (a EndpointAnswers) buckets(endpoint string, step time.Duration, from, to time.Time) ([]*endpoints.Row, error) {
	lo, hi := windows.StartBounds(step, from, to)
	if lo > hi {
		return nil, nil
	}
	return a.Rows.Buckets(endpoint, step, lo, hi)
}

// EndpointRange merges endpoint's buckets of the last window, as
// windows.Config.SumLast sums a client's: rows merge, sketches and all, so
// the quantiles are those of the window's calls.
func (a EndpointAnswers) EndpointRange(endpoint string, window time.Duration) (EndpointWindow, error) {
	now := a.Now()
	step, from, to, err := a.Config.PlanRange(window, now)
	if err != nil {
		return EndpointWindow{}, err
	}
	// Not CheckSeries: a whole retention of the finest step may span more
	// than MaxBuckets, and PlanRange checked the window.
	rows, err := a.buckets(endpoint, step, from, to)
	if err != nil {
		return EndpointWindow{}, err
	}
	lo, _ := windows.StartBounds(step, from, to)
	sum := endpoints.Sum(rows)
	return EndpointWindow{Step: step, From: time.Unix(lo, 0).UTC(), To: to, Summary: endpoints.Summarize(endpoint, sum)}, nil
}
