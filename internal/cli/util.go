package cli

import (
	"bufio"
	"fmt"
	"strings"
)

// joinErrors reports several per-argument errors as docker does: each on
// its own line, exit 1... docker exits 1 for multi-object failures; berth
// keeps the class of the first for the exit code.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return &multiError{msg: strings.Join(msgs, "\nError response from daemon: "), first: errs[0]}
}

type multiError struct {
	msg   string
	first error
}

func (m *multiError) Error() string { return m.msg }
func (m *multiError) Unwrap() error { return m.first }

// confirm asks a yes/no question on the terminal; anything but y/yes is no.
func (a *app) confirm(question string) bool {
	fmt.Fprint(a.stdout, question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return false
	}
	ans := strings.ToLower(strings.TrimSpace(line))
	return ans == "y" || ans == "yes"
}
