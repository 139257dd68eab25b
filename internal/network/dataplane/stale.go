package dataplane

// replaceStale adds els when some of their keys are taken by DNAT
// elements of no live container: AddEndpoint calls it only for an
// endpoint whose caller holds the host ports' reservation, which no live
// owner of those keys could let it take. Such an element is left by a
// container that let its ports go before deleting its elements (a
// monitor reports the exit first and deletes them after, as the deletion
// waits for RCU grace periods) or whose monitor died. The stale elements
// are deleted and els added in one transaction; their former owner's own
// deletion then finds the keys mapping to another value and leaves them
// (removeElements).
func (d *Dataplane) replaceStale(els []element) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var stale []element
		stale, err = d.staleElements(els)
		if err != nil {
			return err
		}
		var b *batch
		if b, err = d.newBatch(); err != nil {
			return err
		}
		if len(stale) > 0 {
			if err = b.delElements(stale, false); err != nil {
				return err
			}
		}
		if err = b.addElements(els); err != nil {
			return err
		}
		if err = b.flush(); err == nil || !isExist(err) && !isNotExist(err) {
			return err
		}
		// The stale owner deleted its element meanwhile (ENOENT), or
		// another took a key (EEXIST): look again.
	}
	return err
}

// staleElements are the kernel's elements that have the key of one of
// els and another value.
func (d *Dataplane) staleElements(els []element) ([]element, error) {
	b, err := d.newBatch()
	if err != nil {
		return nil, err
	}
	want := map[string]map[string]string{}
	for _, e := range els {
		if want[e.set] == nil {
			want[e.set] = map[string]string{}
		}
		want[e.set][string(e.key)] = elementValue(e.set, e.val, e.verdict)
	}
	var out []element
	for set, keys := range want {
		got, err := b.c.GetSetElements(b.sets[set])
		if err != nil {
			return nil, err
		}
		for _, g := range got {
			if v, ok := keys[string(g.Key)]; ok && v != elementValue(set, g.Val, nil) {
				out = append(out, element{set: set, key: g.Key, val: g.Val})
			}
		}
	}
	return out, nil
}
