package alerts

import (
	"log/slog"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/internal/kafka"
)

// Writer writes rules to RulesTopic.
type Writer struct{ em *goka.Emitter }

// NewWriter builds the rules' emitter.
func NewWriter(cfg kafka.Config, log *slog.Logger) (*Writer, error) {
	em, err := goka.NewEmitter(cfg.Brokers, goka.Stream(RulesTopic), RuleCodec{}, cfg.EmitterOptions(log)...)
	if err != nil {
		return nil, err
	}
	return &Writer{em: em}, nil
}

// Put writes r once Kafka has acknowledged it.
func (w *Writer) Put(r Rule) error { return w.em.EmitSync(r.Name, &r) }

// Delete writes the tombstone of the rule named name.
func (w *Writer) Delete(name string) error { return w.em.EmitSync(name, nil) }

// Close flushes and closes the emitter.
func (w *Writer) Close() error { return w.em.Finish() }
