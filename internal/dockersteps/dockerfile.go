package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts in the Dockerfile
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string // the rest, as written
}

func (in instruction) String() string {
	return fmt.Sprintf("Dockerfile:%d %s %s", in.line, in.cmd, in.args)
}

// stage is one FROM and the instructions under it.
type stage struct {
	image, name string
	from        instruction
	steps       []instruction
}

// parseDockerfile splits a Dockerfile into stages, as Docker reads it with
// the default escape character: a line ending in a backslash continues on
// the next, comment lines (also inside a continuation) and blank lines are
// dropped. Heredocs (BuildKit's RUN <<EOF) are refused: nothing here could
// run them the way BuildKit does.
func parseDockerfile(r io.Reader) ([]*stage, error) {
	var stages []*stage
	var cur *instruction
	flush := func() error {
		if cur == nil {
			return nil
		}
		in := *cur
		cur = nil
		if strings.Contains(in.args, "<<") && (in.cmd == "RUN" || in.cmd == "COPY") {
			return fmt.Errorf("%s: heredocs are not supported", in)
		}
		if in.cmd == "FROM" {
			st, err := newStage(in)
			if err != nil {
				return err
			}
			stages = append(stages, st)
			return nil
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				return nil // a global ARG only parameterises FROM lines
			}
			return fmt.Errorf("%s: comes before the first FROM", in)
		}
		last := stages[len(stages)-1]
		last.steps = append(last.steps, in)
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cont := strings.HasSuffix(text, `\`)
		text = strings.TrimSuffix(text, `\`)
		if cur == nil {
			word, rest, _ := strings.Cut(text, " ")
			cur = &instruction{line: n, cmd: strings.ToUpper(word), args: strings.TrimSpace(rest)}
		} else {
			cur.args = strings.TrimSpace(cur.args + " " + text)
		}
		if !cont {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM line")
	}
	return stages, nil
}

func newStage(in instruction) (*stage, error) {
	f := strings.Fields(in.args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		f = f[1:] // --platform=...
	}
	switch {
	case len(f) == 1:
		return &stage{image: f[0], from: in}, nil
	case len(f) == 3 && strings.EqualFold(f[1], "AS"):
		return &stage{image: f[0], name: f[2], from: in}, nil
	}
	return nil, fmt.Errorf("%s: want FROM image [AS name]", in)
}

// flags splits leading --name=value flags (COPY --from=build) off args.
func flags(args string) (map[string]string, string) {
	out := map[string]string{}
	for strings.HasPrefix(args, "--") {
		word, rest, _ := strings.Cut(args, " ")
		name, value, _ := strings.Cut(strings.TrimPrefix(word, "--"), "=")
		out[name] = value
		args = strings.TrimSpace(rest)
	}
	return out, args
}

// execForm reads the JSON array form (["a", "b"]); ok is false for the
// shell form.
func execForm(args string) (words []string, ok bool, err error) {
	if !strings.HasPrefix(args, "[") {
		return nil, false, nil
	}
	if err := json.Unmarshal([]byte(args), &words); err != nil {
		return nil, true, fmt.Errorf("not a JSON array of strings: %w", err)
	}
	return words, true, nil
}
