// Package input describes input that breaks a rule, field by field: the one
// ValidationError the domain packages return (product and product/account
// name it as their own) and the API answers with a 400 listing the fields.
package input

import "strings"

// FieldError says what is wrong with one input field, named by its public
// key.
type FieldError struct {
	Field   string
	Problem string
}

// ValidationError describes input that breaks rules, field by field.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Problem
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Problems collects field errors while input is checked.
type Problems []FieldError

// Add records that field has problem.
func (ps *Problems) Add(field, problem string) {
	*ps = append(*ps, FieldError{Field: field, Problem: problem})
}

// Err returns a *ValidationError listing the problems, or nil when there are none.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Fields: ps}
}
