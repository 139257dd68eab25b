//go:build !linux

package logfile

// watcher is inotify's stand-in where there is none: followers poll.
type watcher struct{ c chan struct{} }

func newWatcher(dir, base string) *watcher { return nil }

func (w *watcher) close() {}
