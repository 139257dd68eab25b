package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/filters"
)

// fill sets every settable field under v to a value of its own (maps and
// slices get one element), so that a record has nothing left at zero.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n % 100))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n % 100))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n))
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), n)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), n)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, *n, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				fill(v.Field(i), n)
			}
		}
	}
}

// TestListDecodesWhatListShows: ps decodes only a part of each record
// (container.DecodeForList); a record with every field set must give the
// same summary and the same filter answers as the whole record.
func TestListDecodesWhatListShows(t *testing.T) {
	for _, mutate := range []func(c *container.Container){
		func(c *container.Container) {},
		func(c *container.Container) { c.State.Running, c.State.Health = false, nil },
		func(c *container.Container) {
			c.State.Running, c.State.Restarting, c.State.StartedAt = false, false, "2026-01-01T00:00:00Z"
		},
	} {
		var full container.Container
		n := 0
		fill(reflect.ValueOf(&full).Elem(), &n)
		mutate(&full)
		raw, err := json.Marshal(&full)
		if err != nil {
			t.Fatal(err)
		}
		var whole container.Container
		if err := json.Unmarshal(raw, &whole); err != nil {
			t.Fatal(err)
		}
		part, err := container.DecodeForList(raw)
		if err != nil {
			t.Fatal(err)
		}
		e := &Engine{}
		now := time.Now()
		if a, b := e.containerSummary(context.Background(), &whole, now, false), e.containerSummary(context.Background(), part, now, false); !reflect.DeepEqual(a, b) {
			t.Errorf("summary of the partly decoded record differs:\n whole %+v\n part  %+v", a, b)
		}
		for name, answer := range map[string]func(c *container.Container) any{
			"health": func(c *container.Container) any { return healthOf(c) },
			"exited": func(c *container.Container) any { return exitedWith(c, []int{whole.State.ExitCode}) },
			"expose": func(c *container.Container) any {
				for p := range whole.Config.ExposedPorts {
					return exposes(c, []string{p})
				}
				return nil
			},
			"volume": func(c *container.Container) any { return mountsAny(c, []string{whole.Mounts[0].Destination}) },
			"publish": func(c *container.Container) any {
				for p := range whole.NetworkSettings.Ports {
					return publishes(c, []string{p})
				}
				return nil
			},
			"network": func(c *container.Container) any {
				for name := range whole.NetworkSettings.Networks {
					f := filters.NewArgs()
					f.Add("network", name)
					return onNetwork(f, c)
				}
				return nil
			},
			"name, id, labels, status, ancestor": func(c *container.Container) any {
				return []any{c.ShortName(), c.ID, c.Config.Labels, c.State.Status, c.Image, c.Created}
			},
		} {
			if a, b := answer(&whole), answer(part); !reflect.DeepEqual(a, b) {
				t.Errorf("filter %s: whole record %v, partly decoded %v", name, a, b)
			}
		}
	}
}
