package confluent

import (
	"errors"
	"fmt"
	"strings"
)

// protoFile is what the decoder needs to know of a .proto text a registry
// returns: its package and its top-level messages in order, which is what a
// one-element Confluent message index points into.
type protoFile struct {
	pkg      string
	messages []string // simple names, in declaration order
}

// messageAt is the fully qualified name of the message a Confluent message
// index names, or "" when the index does not name a top-level message.
func (f protoFile) messageAt(index []int) string {
	if len(index) != 1 || index[0] < 0 || index[0] >= len(f.messages) {
		return ""
	}
	if f.pkg == "" {
		return f.messages[index[0]]
	}
	return f.pkg + "." + f.messages[index[0]]
}

// maxProtoText bounds the schema text scanned.
const maxProtoText = 4 << 20

// scanProto finds the package and the top-level messages of a .proto text.
// It is not a parser: it skips comments and string literals, tracks brace
// depth, and reads the identifier after "package" and "message" at depth 0.
// That is enough to resolve a top-level message index; a text it cannot make
// sense of (unbalanced braces, unterminated comment or string) is an error.
func scanProto(src string) (protoFile, error) {
	var f protoFile
	if len(src) > maxProtoText {
		return f, fmt.Errorf("schema text of %d bytes is too large", len(src))
	}
	depth := 0
	expect := "" // "package" or "message": the next identifier is its name
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return f, errors.New("unterminated comment")
			}
			i += 2 + end + 2
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c && src[j] != '\n' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) || src[j] != c {
				return f, errors.New("unterminated string literal")
			}
			i = j + 1
			expect = ""
		case c == '{':
			depth++
			i++
			expect = ""
		case c == '}':
			depth--
			if depth < 0 {
				return f, errors.New("unbalanced braces")
			}
			i++
			expect = ""
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && (isIdentStart(src[j]) || isDigit(src[j]) || src[j] == '.') {
				j++
			}
			word := src[i:j]
			i = j
			if depth != 0 {
				continue
			}
			switch {
			case expect == "package":
				f.pkg = word
				expect = ""
			case expect == "message":
				f.messages = append(f.messages, word)
				expect = ""
			case word == "package" || word == "message":
				expect = word
			default:
				expect = ""
			}
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				expect = ""
			}
			i++
		}
	}
	if depth != 0 {
		return f, errors.New("unbalanced braces")
	}
	return f, nil
}

func isIdentStart(c byte) bool { return c == '_' || (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
