package llbdump

import (
	"fmt"
	"strings"
)

// Diff is a unified-style line diff of a golden text a and a new text b:
// hunks of changed lines ("-" golden, "+" new) with context unchanged lines
// around them, cut after maxLines output lines. It is meant for test
// failure messages, so it favours readable hunks over speed: the longest
// common subsequence is computed in len(a)*len(b) time and space.
func Diff(a, b string, context, maxLines int) string {
	x := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	y := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	// lcs[i][j] is the length of the longest common subsequence of x[i:], y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		kind byte // ' ', '-', '+'
		text string
		a, b int // 1-based line numbers in a and b
	}
	var lines []line
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			lines = append(lines, line{' ', x[i], i + 1, j + 1})
			i++
			j++
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			lines = append(lines, line{'-', x[i], i + 1, j + 1})
			i++
		default:
			lines = append(lines, line{'+', y[j], i + 1, j + 1})
			j++
		}
	}
	show := make([]bool, len(lines))
	for k, l := range lines {
		if l.kind != ' ' {
			for c := max(0, k-context); c <= min(len(lines)-1, k+context); c++ {
				show[c] = true
			}
		}
	}
	var sb strings.Builder
	n := 0
	for k := 0; k < len(lines); k++ {
		if !show[k] {
			continue
		}
		if k == 0 || !show[k-1] {
			fmt.Fprintf(&sb, "@@ golden line %d, new line %d @@\n", lines[k].a, lines[k].b)
		}
		if n == maxLines {
			sb.WriteString("... (diff cut; run the test with -update and use git diff for the rest)\n")
			break
		}
		fmt.Fprintf(&sb, "%c %s\n", lines[k].kind, lines[k].text)
		n++
	}
	return sb.String()
}
