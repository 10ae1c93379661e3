package userhttp

import (
	"encoding/json"

	"github.com/inarious/inarious/internal/users"
)

// optString tells "absent" from "null" from a value; a merge patch uses null
// to delete a member, and name/email cannot be deleted.
type optString struct {
	set, null bool
	val       string
}

func (o *optString) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.null = true
		return nil
	}
	return json.Unmarshal(b, &o.val)
}

type patchBody struct {
	Name  optString `json:"name"`
	Email optString `json:"email"`
}

func (b patchBody) toPatch() (users.UserPatch, map[string]string) {
	var p users.UserPatch
	errs := map[string]string{}
	for field, o := range map[string]*optString{"name": &b.Name, "email": &b.Email} {
		switch {
		case o.null:
			errs[field] = "must not be null; the field is required"
		case o.set:
			v := o.val
			if field == "name" {
				p.Name = &v
			} else {
				p.Email = &v
			}
		}
	}
	if len(errs) > 0 {
		return p, errs
	}
	return p, nil
}
