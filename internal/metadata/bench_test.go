package metadata

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// benchStore is a store the size of a busy host's: 500 containers.
func benchStore(b *testing.B) *Store {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for i := range 500 {
		s.Update(ctx, func(tx *Tx) error {
			return tx.Put(BucketContainers, fmt.Sprintf("%064d", i), map[string]string{"pad": strings.Repeat("x", 3000)})
		})
	}
	return s
}

func BenchmarkView(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		s.View(ctx, func(tx *Tx) error { return tx.ForEach(BucketContainers, func(string, []byte) error { return nil }) })
	}
}

func BenchmarkUpdate(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		s.Update(ctx, func(tx *Tx) error {
			return tx.Put(BucketContainers, fmt.Sprintf("%064d", i%500), map[string]string{"pad": "y"})
		})
	}
}
