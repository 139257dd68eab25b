package cli

import "testing"

func TestCommandName(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--rm", "busybox"}, "run"},
		{[]string{"--root", "/x", "--runroot", "/y", "ps", "-a"}, "ps"},
		{[]string{"--runtime=runc", "-D", "exec", "c", "sh"}, "exec"},
		{[]string{"--runtime", "runc", "container", "ls"}, "container"},
		{[]string{"--config-file", "/d.json", "--default-bind-ip", "127.0.0.1", "run", "--ip", "10.0.0.2"}, "run"},
		{[]string{"--help"}, ""},
		{[]string{"-v"}, ""},
		{[]string{}, ""},
		{[]string{"--", "run"}, ""},
	}
	for _, tc := range tests {
		if got := commandName(tc.args); got != tc.want {
			t.Errorf("commandName(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestEveryTopLevelCommandIsNamedRight checks the names the lazy command
// table uses to pick one command against the commands themselves: a wrong
// name would only make that command slower to start, and this catches it.
func TestEveryTopLevelCommandIsNamedRight(t *testing.T) {
	a := &app{}
	for _, c := range a.topLevelCommands() {
		if got := c.make().Name(); got != c.name {
			t.Errorf("table entry %q builds command %q", c.name, got)
		}
	}
	root := a.newRootCommand(nil)
	if n := len(root.Commands()); n != len(a.topLevelCommands()) {
		t.Errorf("full tree has %d commands, table %d", n, len(a.topLevelCommands()))
	}
	if root := a.newRootCommand([]string{"run", "busybox"}); len(root.Commands()) != 1 || root.Commands()[0].Name() != "run" {
		t.Errorf("run builds %d commands", len(root.Commands()))
	}
}
