// Package properties reads and writes Java .properties files with the semantics of
// java.util.Properties.load(Reader) and store(Writer) in current JDKs.
//
// # Reading
//
// The input is UTF-8 text split into lines by "\n", "\r" or "\r\n". A line that is
// empty or holds only whitespace (space, tab, form feed) is ignored, as is a comment
// line: one whose first non-whitespace character is '#' or '!'.
//
// A line that ends in an odd number of backslashes continues on the next line: the
// final backslash is dropped and the leading whitespace of the next line is skipped.
// A comment line never continues. A continuation at the end of the input, or onto a
// line holding only whitespace, ends the entry.
//
// The key runs up to the first unescaped '=', ':' or whitespace character. After it
// come optional whitespace, at most one '=' or ':', and more optional whitespace; the
// rest of the line, trailing whitespace included, is the value. A line holding only a
// key gives it the empty value.
//
// Keys and values may contain the escapes \t, \n, \r, \f and \uXXXX (exactly four
// hex digits; a UTF-16 surrogate pair written as two escapes is one character). A
// backslash before any other character stands for that character, so "\ ", "\=",
// "\:", "\#", "\!" and "\\" are a space, '=', ':', '#', '!' and a backslash.
//
// A malformed \uXXXX escape is a *SyntaxError, as it is an error in Java. Unlike
// Java, Parse also reports a *SyntaxError for input that is not valid UTF-8 and for a
// \uXXXX escape that is an unpaired surrogate, which a Go string cannot hold. A
// leading byte order mark is not stripped: as in Java, it becomes part of the first
// key.
//
// # Writing
//
// Write stores a map one "key=value" line per key, in key order, escaping keys with
// EscapeKey and values with EscapeValue so that reading the output gives back the
// same map. Non-ASCII printable characters are written as UTF-8; control and other
// invisible characters are written as \uXXXX escapes.
package properties
