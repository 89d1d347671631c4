//! The W3C `tracestate` list: its grammar, its 32-member limit, its mutation and its
//! truncation rules.
//!
//! Why our own: opentelemetry's `TraceState` checks keys against the older multi-tenant
//! grammar (one `@`, at most 13 characters after it), so it refuses keys the current
//! specification allows and then drops every member with them. It also lets through values
//! the grammar forbids (tabs, a trailing space) and quietly cuts a list at 32 members instead
//! of refusing it. This parser follows the specification's ABNF to the letter, borrows from
//! the header instead of allocating, and is the one gate a `tracestate` passes on its way in
//! and out.

use std::fmt;

/// The most list members a `tracestate` may have; a header with more is invalid.
pub(crate) const MAX_MEMBERS: usize = 32;

/// The longest key and the longest value, in characters.
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;

/// When a list must shrink to fit a size, members longer than this go first (spec).
const LARGE_MEMBER: usize = 128;

/// Why a `tracestate` header was refused. The whole header is then discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// A list member without `=`.
    Member,
    /// A key outside `(lcalpha / DIGIT) 0*255(keychar)`.
    Key,
    /// A value outside `0*255(chr) nblk-chr`.
    Value,
    /// More than [`MAX_MEMBERS`] list members.
    TooManyMembers,
}

impl Invalid {
    /// A short reason, for logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Invalid::Member => "a list member without `=`",
            Invalid::Key => "an invalid key",
            Invalid::Value => "an invalid value",
            Invalid::TooManyMembers => "more than 32 list members",
        }
    }
}

/// `key = (lcalpha / DIGIT) 0*255(keychar)`,
/// `keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"`.
pub(crate) fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    let keychar =
        |c: &u8| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@');
    matches!(b.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && b.len() <= MAX_KEY_LEN
        && b.iter().all(keychar)
}

/// `value = 0*255(chr) nblk-chr`, `chr = %x20 / nblk-chr`,
/// `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`: printable ASCII but `,` and `=`, not ending in
/// a space.
pub(crate) fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    let chr = |c: &u8| matches!(c, 0x20..=0x2B | 0x2D..=0x3C | 0x3E..=0x7E);
    matches!(b.last(), Some(c) if *c != b' ') && b.len() <= MAX_VALUE_LEN && b.iter().all(chr)
}

/// Optional whitespace around list members: spaces and horizontal tabs.
const OWS: [char; 2] = [' ', '\t'];

/// A valid `tracestate` list: at most 32 members with unique keys, in order, borrowed from
/// the text they came from. It lives on the stack: parsing and mutating never allocate.
#[derive(Clone)]
pub(crate) struct List<'a> {
    members: [(&'a str, &'a str); MAX_MEMBERS],
    len: usize,
}

impl fmt::Debug for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for List<'_> {
    fn default() -> Self {
        List {
            members: [("", ""); MAX_MEMBERS],
            len: 0,
        }
    }
}

impl<'a> List<'a> {
    /// Parses a `tracestate` value (repeated headers already joined with `,`).
    ///
    /// Empty and whitespace-only members are allowed and skipped; they do not count towards
    /// the 32. Spaces and tabs around a member are not part of it, so a value's trailing
    /// spaces go while its leading ones stay. A key seen again is dropped (the spec lets a
    /// vendor discard duplicates it did not write) and keeps the first, most recent, one.
    /// Anything else outside the grammar, or a 33rd member, makes the whole header invalid.
    pub(crate) fn parse(text: &'a str) -> Result<Self, Invalid> {
        let mut list = List::default();
        let mut seen = 0;
        for member in text.split(',') {
            let member = member.trim_matches(OWS);
            if member.is_empty() {
                continue;
            }
            seen += 1;
            if seen > MAX_MEMBERS {
                return Err(Invalid::TooManyMembers);
            }
            let (key, value) = member.split_once('=').ok_or(Invalid::Member)?;
            if !valid_key(key) {
                return Err(Invalid::Key);
            }
            if !valid_value(value) {
                return Err(Invalid::Value);
            }
            if list.get(key).is_none() {
                list.members[list.len] = (key, value);
                list.len += 1;
            }
        }
        Ok(list)
    }

    /// The number of members.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no members.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The members, left (most recent) first.
    pub(crate) fn iter(&self) -> std::iter::Copied<std::slice::Iter<'_, (&'a str, &'a str)>> {
        self.members[..self.len].iter().copied()
    }

    /// The value for `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Adds or updates `key`, moving it to the front as the spec's mutation rules require; a
    /// full list loses its right-most member. An invalid key or value changes nothing.
    pub(crate) fn insert(&mut self, key: &'a str, value: &'a str) -> Result<(), Invalid> {
        if !valid_key(key) {
            return Err(Invalid::Key);
        }
        if !valid_value(value) {
            return Err(Invalid::Value);
        }
        self.remove(key);
        self.len = (self.len + 1).min(MAX_MEMBERS);
        self.members[..self.len].rotate_right(1);
        self.members[0] = (key, value);
        Ok(())
    }

    /// Appends `key=value` at the right if the key is new, valid and there is room; returns
    /// whether it did.
    pub(crate) fn push(&mut self, key: &'a str, value: &'a str) -> bool {
        let fits = self.len < MAX_MEMBERS && valid_key(key) && valid_value(value);
        if fits && self.get(key).is_none() {
            self.members[self.len] = (key, value);
            self.len += 1;
            true
        } else {
            false
        }
    }

    /// Removes `key`, if present.
    pub(crate) fn remove(&mut self, key: &str) {
        let found = self.iter().position(|(k, _)| k == key);
        if let Some(i) = found {
            self.remove_at(i);
        }
    }

    fn remove_at(&mut self, i: usize) {
        self.members[i..self.len].rotate_left(1);
        self.len -= 1;
    }

    /// The length of the list as a header: members joined by `,`.
    pub(crate) fn header_len(&self) -> usize {
        let members: usize = self.iter().map(|(k, v)| k.len() + 1 + v.len()).sum();
        members + self.len.saturating_sub(1)
    }

    /// Drops whole members until the header fits in `max` bytes, as the spec orders: members
    /// longer than 128 characters first, then from the right. Each goes right-most first.
    pub(crate) fn truncate_to(&mut self, max: usize) {
        let mut len = self.header_len();
        while len > max && self.len > 0 {
            let size = |(k, v): (&str, &str)| k.len() + 1 + v.len();
            let victim = (0..self.len)
                .rev()
                .find(|&i| size(self.members[i]) > LARGE_MEMBER)
                .unwrap_or(self.len - 1);
            len -= size(self.members[victim]) + usize::from(self.len > 1);
            self.remove_at(victim);
        }
    }

    /// The list as a header value, with no whitespace. Empty for an empty list.
    pub(crate) fn to_header(&self) -> String {
        let mut out = String::with_capacity(self.header_len());
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }

    /// Whether `text` is this list's header exactly, so it can be sent as it came. The
    /// members are substrings of `text` in order, separated by at least a comma: equal
    /// lengths leave no room for whitespace, empty members or dropped ones.
    pub(crate) fn is_header_of(&self, text: &str) -> bool {
        self.header_len() == text.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> Result<Vec<(&str, &str)>, Invalid> {
        List::parse(text).map(|l| l.iter().collect())
    }

    /// Every `chr` of the value grammar, in order: 0x20-0x2B, 0x2D-0x3C, 0x3E-0x7E.
    fn every_value_char() -> String {
        (0x20u8..=0x7E)
            .filter(|c| *c != b',' && *c != b'=')
            .map(char::from)
            .collect()
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            parse("rojo=00f067aa0ba902b7"),
            Ok(vec![("rojo", "00f067aa0ba902b7")])
        );
        assert_eq!(
            parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            Ok(vec![("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")])
        );
        assert_eq!(
            parse("vendorname1=opaqueValue1,vendorname2=opaqueValue2"),
            Ok(vec![
                ("vendorname1", "opaqueValue1"),
                ("vendorname2", "opaqueValue2")
            ])
        );
    }

    #[test]
    fn keys_follow_the_current_grammar() {
        let every_keychar = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@";
        for key in [
            "a",
            "0",
            "9lives",
            every_keychar,
            "foo@",
            "foo@@bar",
            "foo@bar@baz",
            "tenant@system",
            "t@vvvvvvvvvvvvvvv",
        ] {
            assert!(valid_key(key), "{key}");
        }
        for key in [
            "", "@foo", "_a", "-a", "*a", "/a", "Foo", "fOo", "foo ", " foo", "foo.bar",
        ] {
            assert!(!valid_key(key), "{key}");
        }
        for key in ["a\t", "a=", "a,", "é"] {
            assert!(!valid_key(key), "{key:?}");
        }
    }

    #[test]
    fn keys_may_be_256_characters_not_257() {
        let max = "z".repeat(256);
        assert!(valid_key(&max));
        assert!(!valid_key(&"z".repeat(257)));
        let tenant = format!("{}@{}", "t".repeat(241), "v".repeat(14));
        assert_eq!(tenant.len(), 256);
        assert!(valid_key(&tenant));
        assert!(valid_key(&format!("{}@v", "t".repeat(242))));
        assert_eq!(parse(&format!("foo=1,{max}=1")).unwrap().len(), 2);
        assert_eq!(
            parse(&format!("foo=1,{}=1", "z".repeat(257))),
            Err(Invalid::Key)
        );
    }

    #[test]
    fn values_are_printable_ascii_but_comma_and_equals() {
        let all = every_value_char();
        assert_eq!(all.len(), 93);
        assert!(all.starts_with(' '), "leading spaces are part of a value");
        assert!(valid_value(&all));
        for value in ["1", " 1", "a b", "~", "!"] {
            assert!(valid_value(value), "{value:?}");
        }
        for value in [
            "", " ", "1 ", "a=b", "a,b", "a\tb", "\t", "é", "a\u{7f}", "a\nb",
        ] {
            assert!(!valid_value(value), "{value:?}");
        }
    }

    #[test]
    fn values_may_be_256_characters_not_257() {
        assert!(valid_value(&"v".repeat(256)));
        assert!(!valid_value(&"v".repeat(257)));
        assert!(valid_value(&format!("{}v", " ".repeat(255))));
    }

    #[test]
    fn the_official_all_allowed_characters_case() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let vendor = format!("{key}@a-z0-9_-*/");
        let value = every_value_char();
        for k in [key, vendor.as_str()] {
            let text = format!("{k}={value}");
            assert_eq!(parse(&text), Ok(vec![(k, value.as_str())]));
        }
    }

    #[test]
    fn whitespace_around_members_is_not_part_of_them() {
        let three = Ok(vec![("foo", "1"), ("bar", "2"), ("baz", "3")]);
        assert_eq!(parse("foo=1 \t , \t bar=2, \t baz=3"), three);
        assert_eq!(parse("foo=1\t \t,\t \tbar=2,\t \tbaz=3"), three);
        for text in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
            assert_eq!(parse(text), Ok(vec![("foo", "1")]), "{text:?}");
        }
        // A value's leading spaces are its own.
        assert_eq!(parse("foo= 1"), Ok(vec![("foo", " 1")]));
        // Whitespace inside a key is not OWS.
        assert_eq!(parse("foo =1"), Err(Invalid::Key));
        assert_eq!(parse("foo=  "), Err(Invalid::Value));
    }

    #[test]
    fn empty_members_are_allowed_and_ignored() {
        for text in ["", " ", "\t", ",", " , ,\t,", ",,,"] {
            assert_eq!(parse(text), Ok(vec![]), "{text:?}");
        }
        assert_eq!(
            parse(",foo=1,, ,bar=2,"),
            Ok(vec![("foo", "1"), ("bar", "2")])
        );
    }

    #[test]
    fn thirty_two_members_are_kept() {
        let text: Vec<String> = (1..=32).map(|i| format!("bar{i:02}={i:02}")).collect();
        let list = List::parse(&text.join(",")).map(|l| l.len());
        assert_eq!(list, Ok(32));
        // Empty members do not count.
        assert_eq!(
            List::parse(&format!(",{},, ", text.join(", ,"))).map(|l| l.len()),
            Ok(32)
        );
    }

    #[test]
    fn a_thirty_third_member_invalidates_the_header() {
        let text: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
        assert_eq!(
            List::parse(&text.join(",")).map(|l| l.len()),
            Err(Invalid::TooManyMembers)
        );
        // Duplicates are list members too.
        assert_eq!(
            List::parse(&vec!["a=1"; 33].join(",")).map(|l| l.len()),
            Err(Invalid::TooManyMembers)
        );
    }

    #[test]
    fn one_bad_member_invalidates_the_header() {
        for (text, why) in [
            ("foo=bar=baz", Invalid::Value),
            ("foo=,bar=3", Invalid::Value),
            ("foo", Invalid::Member),
            ("foo=1,bar", Invalid::Member),
            ("=1", Invalid::Key),
            ("@foo=1,bar=2", Invalid::Key),
            ("FOO=1", Invalid::Key),
            ("foo.bar=1", Invalid::Key),
            ("foo=1,bar=a\tb", Invalid::Value),
        ] {
            assert_eq!(parse(text), Err(why), "{text:?}");
        }
    }

    #[test]
    fn keys_with_at_signs_keep_their_neighbours() {
        assert_eq!(parse("foo@=1,bar=2"), Ok(vec![("foo@", "1"), ("bar", "2")]));
        assert_eq!(
            parse("foo@@bar=1,bar=2"),
            Ok(vec![("foo@@bar", "1"), ("bar", "2")])
        );
        assert_eq!(
            parse("foo@bar@baz=1,bar=2"),
            Ok(vec![("foo@bar@baz", "1"), ("bar", "2")])
        );
        let key = format!("t@{}", "v".repeat(15));
        assert_eq!(
            parse(&format!("foo=1,{key}=1")),
            Ok(vec![("foo", "1"), (key.as_str(), "1")])
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_first_value() {
        assert_eq!(parse("foo=1,foo=1"), Ok(vec![("foo", "1")]));
        assert_eq!(
            parse("foo=1,bar=2,foo=3"),
            Ok(vec![("foo", "1"), ("bar", "2")])
        );
    }

    #[test]
    fn insert_moves_the_key_to_the_front_without_duplicates() {
        let mut list = List::parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").unwrap();
        list.insert("congo", "ucfJifl5GOE").unwrap();
        assert_eq!(list.to_header(), "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7");
        list.insert("ours", "1").unwrap();
        assert_eq!(
            list.to_header(),
            "ours=1,congo=ucfJifl5GOE,rojo=00f067aa0ba902b7"
        );
        assert_eq!(list.insert("Bad", "1"), Err(Invalid::Key));
        assert_eq!(list.insert("ok", "bad "), Err(Invalid::Value));
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn insert_into_a_full_list_drops_the_right_most_member() {
        let text: Vec<String> = (1..=32).map(|i| format!("k{i}=v")).collect();
        let text = text.join(",");
        let mut list = List::parse(&text).unwrap();
        list.insert("ours", "1").unwrap();
        assert_eq!(list.len(), 32);
        assert_eq!(list.iter().next(), Some(("ours", "1")));
        assert_eq!(list.get("k31"), Some("v"));
        assert_eq!(list.get("k32"), None);
        // Updating a key of a full list drops nothing else.
        list.insert("k5", "w").unwrap();
        assert_eq!(list.len(), 32);
        assert_eq!(list.get("k31"), Some("v"));
    }

    #[test]
    fn push_refuses_duplicates_invalid_members_and_a_33rd() {
        let mut list = List::default();
        assert!(list.push("a", "1"));
        assert!(!list.push("a", "2"));
        assert!(!list.push("B", "2"));
        assert!(!list.push("b", "2 "));
        assert_eq!(list.to_header(), "a=1");
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        for k in &keys {
            list.push(k, "v");
        }
        assert_eq!(list.len(), 32);
    }

    #[test]
    fn truncation_drops_large_members_first_then_from_the_right() {
        let big = "x".repeat(200);
        let text = format!("a=1,big1={big},b=2,big2={big},c=3");
        let mut list = List::parse(&text).unwrap();
        list.truncate_to(300);
        assert_eq!(list.to_header(), format!("a=1,big1={big},b=2,c=3"));
        list.truncate_to(100);
        assert_eq!(list.to_header(), "a=1,b=2,c=3");
        list.truncate_to(7);
        assert_eq!(list.to_header(), "a=1,b=2");
        list.truncate_to(0);
        assert!(list.is_empty());
        assert_eq!(list.to_header(), "");
    }

    #[test]
    fn the_canonical_form_is_recognised() {
        for (text, canonical) in [
            ("a=1,b=2", true),
            ("a= 1", true),
            ("a=1, b=2", false),
            ("a=1,,b=2", false),
            ("a=1,b=2,", false),
            ("a=1,a=1", false),
        ] {
            let list = List::parse(text).unwrap();
            assert_eq!(list.is_header_of(text), canonical, "{text:?}");
            assert!(list.is_header_of(&list.to_header()));
        }
    }

    /// Text made of the characters the grammar cares about, so that most cases get past the
    /// first member.
    fn tracestate_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9_@*/= ,\t-]{0,80}",
            "([a-z][a-z0-9@]{0,6}=[ -~]{0,6}[,\t ]{0,3}){0,40}",
            "\\PC{0,80}",
        ]
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_output_reparses_to_itself(text in tracestate_text()) {
            if let Ok(mut list) = List::parse(&text) {
                prop_assert!(list.len() <= MAX_MEMBERS);
                let header = list.to_header();
                let again = List::parse(&header).unwrap();
                prop_assert_eq!(again.to_header(), header.clone());
                prop_assert!(again.is_header_of(&header));
                list.truncate_to(64);
                prop_assert!(list.to_header().len() <= 64);
            }
        }
    }
}
