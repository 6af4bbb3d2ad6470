package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// evaluate computes + - * / and parentheses over decimal numbers, by
// recursive descent: expression = term {(+|-) term}; term = factor {(*|/) factor};
// factor = number | (expression) | -factor.
func evaluate(input string) (float64, error) {
	p := &parser{text: strings.TrimSpace(input)}
	value, err := p.expression()
	if err != nil {
		return 0, err
	}
	p.skipSpace()
	if p.pos != len(p.text) {
		return 0, fmt.Errorf("unexpected %q at %d", p.text[p.pos:], p.pos)
	}
	return value, nil
}

type parser struct {
	text string
	pos  int
}

func (p *parser) skipSpace() {
	for p.pos < len(p.text) && unicode.IsSpace(rune(p.text[p.pos])) {
		p.pos++
	}
}

func (p *parser) peek() byte {
	p.skipSpace()
	if p.pos < len(p.text) {
		return p.text[p.pos]
	}
	return 0
}

func (p *parser) expression() (float64, error) {
	value, err := p.term()
	for err == nil {
		switch p.peek() {
		case '+', '-':
			op := p.text[p.pos]
			p.pos++
			var right float64
			if right, err = p.term(); err == nil {
				if op == '+' {
					value += right
				} else {
					value -= right
				}
			}
		default:
			return value, nil
		}
	}
	return 0, err
}

func (p *parser) term() (float64, error) {
	value, err := p.factor()
	for err == nil {
		switch p.peek() {
		case '*', '/':
			op := p.text[p.pos]
			p.pos++
			var right float64
			if right, err = p.factor(); err == nil {
				if op == '*' {
					value *= right
				} else if right == 0 {
					return 0, errors.New("division by zero")
				} else {
					value /= right
				}
			}
		default:
			return value, nil
		}
	}
	return 0, err
}

func (p *parser) factor() (float64, error) {
	switch c := p.peek(); {
	case c == '(':
		p.pos++
		value, err := p.expression()
		if err != nil {
			return 0, err
		}
		if p.peek() != ')' {
			return 0, errors.New("missing )")
		}
		p.pos++
		return value, nil
	case c == '-':
		p.pos++
		value, err := p.factor()
		return -value, err
	case c == '.' || (c >= '0' && c <= '9'):
		start := p.pos
		for p.pos < len(p.text) && (p.text[p.pos] == '.' || (p.text[p.pos] >= '0' && p.text[p.pos] <= '9')) {
			p.pos++
		}
		return strconv.ParseFloat(p.text[start:p.pos], 64)
	case c == 0:
		return 0, errors.New("unexpected end of expression")
	default:
		return 0, fmt.Errorf("unexpected %q", string(c))
	}
}
