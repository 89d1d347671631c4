//! The OpenAPI schema dialects, translated once at load into plain JSON Schema 2020-12 so
//! that one standard validator (`jsonschema`) checks both 3.0 and 3.1 specs.
//!
//! OpenAPI 3.0 schemas are an extended subset of draft 4 whose words mean something else
//! in 2020-12 (`nullable`, boolean `exclusiveMinimum`, `$ref` hiding its siblings, and
//! `integer`, which 2020-12 widens to `1.0`; that one takes a keyword of ours), and both
//! versions give `readOnly`, `writeOnly` and `discriminator` a request/response meaning that
//! JSON Schema leaves to annotations. Rewriting the schemas — into one copy of the document
//! for requests and one for responses — keeps that meaning out of the hot path entirely:
//! validating is then just running compiled 2020-12 validators.

use serde_json::{Map, Value, json};

use super::document::{SpecVersion, escape, unescape};

/// Which side of an exchange a translated document is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// `readOnly` properties may not be sent and are never required.
    Request,
    /// `writeOnly` properties may not be sent and are never required.
    Response,
}

/// A copy of the bundled `doc` whose Schema Objects are JSON Schema 2020-12 with their
/// OpenAPI meaning for `view`.
pub(crate) fn translate(doc: &Value, version: SpecVersion, view: View) -> Value {
    let t = Translator {
        original: doc,
        version,
        view,
    };
    let mut out = doc.clone();
    t.document(&mut out, 0);
    inherited_discriminators(&mut out);
    out
}

struct Translator<'a> {
    original: &'a Value,
    version: SpecVersion,
    view: View,
}

/// Members whose values are data, never Schema Objects.
fn is_data(key: &str) -> bool {
    matches!(key, "example" | "examples" | "default" | "enum" | "const") || key.starts_with("x-")
}

impl Translator<'_> {
    /// Walks the non-schema parts of the document, translating each Schema Object found:
    /// `components.schemas.*` and the `schema` of parameters, headers and media types.
    fn document(&self, v: &mut Value, depth: usize) {
        let Value::Object(map) = v else {
            if let Value::Array(items) = v {
                for item in items {
                    self.document(item, depth + 1);
                }
            }
            return;
        };
        for (k, child) in map.iter_mut() {
            if is_data(k) {
                continue;
            }
            if k == "schema" {
                self.schema(child);
            } else if k == "schemas" && depth == 1 {
                if let Value::Object(schemas) = child {
                    for s in schemas.values_mut() {
                        self.schema(s);
                    }
                }
            } else {
                self.document(child, depth + 1);
            }
        }
    }

    fn schema(&self, s: &mut Value) {
        let Value::Object(m) = s else {
            return;
        };
        if self.version == SpecVersion::V3_0 {
            if m.contains_key("$ref") {
                // 3.0: "This object cannot be extended with additional properties and any
                // properties added SHALL be ignored."
                m.retain(|k, _| k == "$ref");
                return;
            }
            integer_literal(m);
            nullable(m);
            exclusive_bound(m, "exclusiveMinimum", "minimum");
            exclusive_bound(m, "exclusiveMaximum", "maximum");
        }
        integer_width(m);
        self.discriminator(m);
        self.hidden_properties(m);
        for key in [
            "additionalProperties",
            "items",
            "not",
            "if",
            "then",
            "else",
            "contains",
            "propertyNames",
            "unevaluatedProperties",
            "unevaluatedItems",
            "additionalItems",
        ] {
            if let Some(child) = m.get_mut(key) {
                match child {
                    Value::Array(items) => items.iter_mut().for_each(|c| self.schema(c)),
                    other => self.schema(other),
                }
            }
        }
        for key in ["allOf", "anyOf", "oneOf", "prefixItems"] {
            if let Some(Value::Array(items)) = m.get_mut(key) {
                items.iter_mut().for_each(|c| self.schema(c));
            }
        }
        for key in [
            "properties",
            "patternProperties",
            "dependentSchemas",
            "$defs",
            "definitions",
        ] {
            if let Some(Value::Object(children)) = m.get_mut(key) {
                children.values_mut().for_each(|c| self.schema(c));
            }
        }
    }

    /// `readOnly` properties in a request and `writeOnly` ones in a response: not required,
    /// and not allowed (as openapi-core has it).
    fn hidden_properties(&self, m: &mut Map<String, Value>) {
        let flag = match self.view {
            View::Request => "readOnly",
            View::Response => "writeOnly",
        };
        let Some(Value::Object(props)) = m.get_mut("properties") else {
            return;
        };
        let mut hidden = Vec::new();
        for (name, p) in props.iter_mut() {
            if self.flagged(p, flag) {
                hidden.push(name.clone());
                *p = Value::Bool(false);
            }
        }
        if hidden.is_empty() {
            return;
        }
        if let Some(Value::Array(required)) = m.get_mut("required") {
            required.retain(|r| !r.as_str().is_some_and(|r| hidden.iter().any(|h| h == r)));
            if required.is_empty() {
                m.remove("required");
            }
        }
    }

    /// Whether the property schema `p` (or the schema its `$ref` names) sets `flag`.
    fn flagged(&self, p: &Value, flag: &str) -> bool {
        if p.get(flag) == Some(&Value::Bool(true)) {
            return true;
        }
        p.get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|ptr| self.original.pointer(ptr))
            .is_some_and(|t| t.get(flag) == Some(&Value::Bool(true)))
    }

    /// A `discriminator` beside `oneOf`/`anyOf` of `$ref`s becomes: the property is
    /// required and one of the known values, and its value selects the one branch to check,
    /// so a failing request gets *that* branch's errors rather than every branch's.
    fn discriminator(&self, m: &mut Map<String, Value>) {
        let Some(prop) = m
            .get("discriminator")
            .and_then(|d| d.get("propertyName"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return;
        };
        let Some(key) = ["oneOf", "anyOf"].into_iter().find(|k| m.contains_key(*k)) else {
            return;
        };
        let Some(Value::Array(branches)) = m.get(key) else {
            return;
        };
        let refs: Option<Vec<String>> = branches
            .iter()
            .map(|b| b.get("$ref").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let Some(refs) = refs else {
            return; // an inline branch has no name to select it by
        };
        let mut pairs = mapping(m);
        for r in &refs {
            if pairs.iter().any(|(_, t)| t == r) {
                continue;
            }
            let name = r.rsplit('/').next().map(unescape).unwrap_or_default();
            pairs.push((name.into_owned(), r.clone()));
        }
        m.remove(key);
        // Done here: what is left of `discriminator` in the copy is for
        // `inherited_discriminators`.
        m.remove("discriminator");
        let values: Vec<Value> = pairs
            .iter()
            .map(|(v, _)| Value::String(v.clone()))
            .collect();
        let mut checks = vec![json!({
            "required": [prop],
            "properties": { prop.clone(): { "enum": values } },
        })];
        for (value, r) in pairs {
            checks.push(json!({
                "if": { "required": [prop], "properties": { prop.clone(): { "const": value } } },
                "then": { "$ref": r },
            }));
        }
        match m.get_mut("allOf") {
            Some(Value::Array(all)) => all.extend(checks),
            _ => {
                m.insert("allOf".into(), Value::Array(checks));
            }
        }
    }
}

/// A `discriminator`'s explicit `mapping` of the schema `m`, each target as a reference (a
/// bare name is a component schema's).
fn mapping(m: &Map<String, Value>) -> Vec<(String, String)> {
    let Some(Value::Object(mapping)) = m.get("discriminator").and_then(|d| d.get("mapping")) else {
        return Vec::new();
    };
    mapping
        .iter()
        .filter_map(|(value, target)| {
            let target = target.as_str()?;
            let r = if target.contains('/') || target.starts_with('#') {
                target.to_owned()
            } else {
                format!("#/components/schemas/{}", escape(target))
            };
            Some((value.clone(), r))
        })
        .collect()
}

/// Where the own content of a schema with an inherited discriminator is kept
/// (`#/x-ms-chassis-bases/Pet`): outside `components.schemas`, whose entries are checked
/// and reported by name.
const BASES: &str = "x-ms-chassis-bases";

/// A `discriminator` on a component schema that others extend (OpenAPI's inheritance
/// example: `Pet` has the discriminator, `Cat` is `allOf: [{$ref: Pet}, …]`). A request
/// that names `Cat` is checked as a `Cat`, with a `Cat`'s errors: the property is required
/// and one of the known values (the mapping's, the name of every schema that extends the
/// base with `allOf`, and the base's own name).
///
/// `Pet` becomes that dispatch, its own content moves to `#/x-ms-chassis-bases/Pet`, and
/// the extending schemas' references to `Pet` on the same instance (in `allOf`, `anyOf`,
/// `oneOf`, `not`, `if`, `then`, `else`) point there, so checking a `Cat` does not select
/// the `Cat` again. A mapped schema that does not extend the base is checked with the
/// base's content beside it.
fn inherited_discriminators(doc: &mut Value) {
    struct Plan {
        name: String,
        prop: String,
        pairs: Vec<(String, String)>,
    }
    let Some(Value::Object(schemas)) = doc.pointer("/components/schemas") else {
        return;
    };
    let component = |name: &str| format!("#/components/schemas/{}", escape(name));
    let mut plans = Vec::new();
    for (name, s) in schemas {
        let Value::Object(m) = s else { continue };
        let Some(prop) = m
            .get("discriminator")
            .and_then(|d| d.get("propertyName"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        if m.contains_key("oneOf") || m.contains_key("anyOf") {
            continue; // inline branches: nothing names them
        }
        let me = component(name);
        let mut pairs = mapping(m);
        for (child, c) in schemas {
            let r = component(child);
            if child != name && extends(c, &me) && !pairs.iter().any(|(_, t)| *t == r) {
                pairs.push((child.clone(), r));
            }
        }
        if pairs.is_empty() {
            continue;
        }
        if !pairs.iter().any(|(v, _)| v == name) {
            pairs.push((name.clone(), me));
        }
        plans.push(Plan {
            name: name.clone(),
            prop: prop.to_owned(),
            pairs,
        });
    }
    if plans.is_empty() {
        return;
    }
    // Which targets extend their base, read before any reference moves.
    let extending: Vec<Vec<bool>> = plans
        .iter()
        .map(|p| {
            let me = component(&p.name);
            p.pairs
                .iter()
                .map(|(_, t)| {
                    *t == me
                        || t.strip_prefix('#')
                            .and_then(|ptr| doc.pointer(ptr))
                            .is_some_and(|c| extends(c, &me))
                })
                .collect()
        })
        .collect();
    let base_ref = |name: &str| format!("#/{BASES}/{}", escape(name));
    for p in &plans {
        let (me, base) = (component(&p.name), base_ref(&p.name));
        for (_, t) in &p.pairs {
            if *t != me
                && let Some(c) = t.strip_prefix('#').and_then(|ptr| doc.pointer_mut(ptr))
            {
                retarget(c, &me, &base);
            }
        }
    }
    let mut bases = Map::new();
    for (p, extending) in plans.into_iter().zip(extending) {
        let (me, base) = (component(&p.name), base_ref(&p.name));
        let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") else {
            return;
        };
        let Some(slot) = schemas.get_mut(&p.name) else {
            continue;
        };
        let mut own = std::mem::take(slot);
        if let Value::Object(m) = &mut own {
            m.remove("discriminator");
        }
        bases.insert(p.name.clone(), own);
        let values: Vec<Value> = p.pairs.iter().map(|(v, _)| json!(v)).collect();
        let mut checks = vec![json!({
            "required": [p.prop],
            "properties": { p.prop.clone(): { "enum": values } },
        })];
        for ((value, target), extends) in p.pairs.into_iter().zip(extending) {
            let then = if target == me {
                json!({ "$ref": base })
            } else if extends {
                json!({ "$ref": target })
            } else {
                json!({ "allOf": [{ "$ref": target }, { "$ref": base }] })
            };
            checks.push(json!({
                "if": { "required": [p.prop], "properties": { p.prop.clone(): { "const": value } } },
                "then": then,
            }));
        }
        *slot = json!({ "allOf": checks });
    }
    if let Value::Object(root) = doc {
        root.insert(BASES.into(), Value::Object(bases));
    }
}

/// Whether the schema `s` extends the one `r` names: `allOf` holds a `$ref` to it.
fn extends(s: &Value, r: &str) -> bool {
    s.get("allOf").and_then(Value::as_array).is_some_and(|all| {
        all.iter()
            .any(|b| b.get("$ref").and_then(Value::as_str) == Some(r))
    })
}

/// Points `s`'s references to `from` that apply to the same instance (not those under
/// `properties` or `items`, which check other values) at `to`.
fn retarget(s: &mut Value, from: &str, to: &str) {
    let Value::Object(m) = s else { return };
    if let Some(Value::String(r)) = m.get_mut("$ref")
        && r == from
    {
        *r = to.to_owned();
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(items)) = m.get_mut(key) {
            items.iter_mut().for_each(|c| retarget(c, from, to));
        }
    }
    for key in ["not", "if", "then", "else"] {
        if let Some(c) = m.get_mut(key) {
            retarget(c, from, to);
        }
    }
}

/// OpenAPI's `format: int32` / `int64` bound the value, as openapi-core checks them; JSON
/// Schema only knows the format as an annotation.
fn integer_width(m: &mut Map<String, Value>) {
    let (min, max) = match m.get("format").and_then(Value::as_str) {
        Some("int32") => (json!(i32::MIN), json!(i32::MAX)),
        Some("int64") => (json!(i64::MIN), json!(i64::MAX)),
        _ => return,
    };
    let bound = json!({"minimum": min, "maximum": max});
    match m.get_mut("allOf") {
        Some(Value::Array(all)) => all.push(bound),
        _ => {
            m.insert("allOf".into(), json!([bound]));
        }
    }
}

/// The keyword that gives 3.0's `type: integer` its draft-4 meaning: a number written
/// without a fraction or an exponent (`1`, not `1.0` or `1e2`, which 2020-12 counts as
/// integers). openapi-core reads 3.0 so, and a Rust handler's `i64` refuses `1.0` too.
pub(crate) const INTEGER_LITERAL: &str = "x-ms-chassis-integer-literal";

fn integer_literal(m: &mut Map<String, Value>) {
    if m.get("type").and_then(Value::as_str) == Some("integer") {
        m.insert(INTEGER_LITERAL.into(), Value::Bool(true));
    }
}

/// [`INTEGER_LITERAL`]: serde_json keeps a number written with a fraction or an exponent
/// as an `f64`, and one written as an integer as an `i64` or a `u64`. A fraction the
/// `type` keyword already refuses, so only whole `f64`s are this keyword's to refuse, but
/// not all: `-0` and integers beyond 64 bits are `f64`s too, written as integers.
pub(crate) struct IntegerLiteral;

impl IntegerLiteral {
    /// The factory `jsonschema::options().with_keyword` takes.
    pub(crate) fn factory<'a>(
        _: &'a Map<String, Value>,
        _: &'a Value,
        _: jsonschema::paths::Location,
    ) -> Result<Box<dyn for<'i> jsonschema::Keyword<'i>>, jsonschema::ValidationError<'a>> {
        Ok(Box::new(IntegerLiteral))
    }
}

impl<'i> jsonschema::Keyword<'i> for IntegerLiteral {
    fn validate(&self, instance: &'i Value) -> Result<(), jsonschema::ValidationError<'i>> {
        if jsonschema::Keyword::is_valid(self, instance) {
            Ok(())
        } else {
            Err(jsonschema::ValidationError::custom(
                "is a number written with a fraction or an exponent, not an integer",
            ))
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        match instance {
            Value::Number(n) => {
                !n.is_f64()
                    || n.as_f64().is_some_and(|f| {
                        f.fract() != 0.0 || f == 0.0 || f.abs() >= 9_223_372_036_854_775_808.0
                    })
            }
            _ => true,
        }
    }
}

/// 3.0 `nullable: true` beside a `type`: `null` is one more type. Without a `type` it has
/// no effect, and the other keywords keep their meaning, so an `enum` without `null` still
/// refuses it: OpenAPI 3.0.3 and the OAI's nullable clarification say both.
fn nullable(m: &mut Map<String, Value>) {
    if m.remove("nullable") != Some(Value::Bool(true)) {
        return;
    }
    let Some(Value::String(t)) = m.get("type") else {
        return;
    };
    let t = t.clone();
    m.insert("type".into(), json!([t, "null"]));
}

/// 3.0's boolean `exclusiveMinimum: true` beside `minimum: m` is 2020-12's
/// `exclusiveMinimum: m` (and likewise for the maximum).
fn exclusive_bound(m: &mut Map<String, Value>, exclusive: &str, inclusive: &str) {
    match m.get(exclusive) {
        Some(Value::Bool(true)) => {
            if let Some(bound) = m.remove(inclusive) {
                m.insert(exclusive.into(), bound);
            } else {
                m.remove(exclusive);
            }
        }
        Some(Value::Bool(false)) => {
            m.remove(exclusive);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(schema: Value, version: SpecVersion, view: View) -> Value {
        let doc = json!({"components": {"schemas": {"S": schema, "R": {"type": "string", "readOnly": true}}}});
        translate(&doc, version, view)["components"]["schemas"]["S"].clone()
    }

    #[test]
    fn nullable_and_exclusive_bounds_keep_their_3_0_meaning() {
        let s = one(
            json!({"type": "integer", "nullable": true, "minimum": 1, "exclusiveMinimum": true,
                   "maximum": 9, "exclusiveMaximum": false, "enum": [1, 2]}),
            SpecVersion::V3_0,
            View::Request,
        );
        assert_eq!(
            s,
            json!({"type": ["integer", "null"], "exclusiveMinimum": 1, "maximum": 9, "enum": [1, 2],
                   INTEGER_LITERAL: true})
        );
        let check = |schema: Value| {
            let s = one(schema, SpecVersion::V3_0, View::Request);
            jsonschema::validator_for(&s).unwrap()
        };
        let v = check(json!({"type": "string", "nullable": true}));
        assert!(v.is_valid(&Value::Null) && v.is_valid(&json!("x")));
        // An enum keeps its meaning: without null among its values, null is refused.
        let v = check(json!({"type": "string", "nullable": true, "enum": ["a", "b"]}));
        assert!(!v.is_valid(&Value::Null) && v.is_valid(&json!("a")));
        let v = check(json!({"type": "string", "nullable": true, "enum": ["a", null]}));
        assert!(v.is_valid(&Value::Null));
        // 3.1 is already 2020-12: untouched.
        let s31 = json!({"type": "integer", "exclusiveMinimum": 1, "nullable": true});
        assert_eq!(one(s31.clone(), SpecVersion::V3_1, View::Request), s31);
    }

    #[test]
    fn ref_siblings_are_dropped_in_3_0_only() {
        let s = json!({"$ref": "#/components/schemas/R", "maxLength": 1});
        assert_eq!(
            one(s.clone(), SpecVersion::V3_0, View::Response),
            json!({"$ref": "#/components/schemas/R"})
        );
        assert_eq!(one(s.clone(), SpecVersion::V3_1, View::Response), s);
    }

    #[test]
    fn read_only_properties_are_not_required_nor_allowed_in_requests() {
        let s = json!({"type": "object", "required": ["id", "name"],
            "properties": {"id": {"type": "integer", "readOnly": true}, "name": {"type": "string"},
                           "r": {"$ref": "#/components/schemas/R"}}});
        let req = one(s.clone(), SpecVersion::V3_1, View::Request);
        assert_eq!(req["required"], json!(["name"]));
        assert_eq!(req["properties"]["id"], json!(false));
        assert_eq!(req["properties"]["r"], json!(false));
        let res = one(s, SpecVersion::V3_1, View::Response);
        assert_eq!(res["required"], json!(["id", "name"]));
    }

    /// OpenAPI 3.0.3's own inheritance example, a little extended: `Pet` has the
    /// discriminator, `Cat` and `Dog` extend it, `Lizard` is mapped without extending it.
    fn inheritance(version: SpecVersion) -> Value {
        let doc = json!({"components": {"schemas": {
            "Pet": {"type": "object", "required": ["name", "petType"],
                    "properties": {"name": {"type": "string"}, "petType": {"type": "string"},
                                   "friend": {"$ref": "#/components/schemas/Pet"}},
                    "discriminator": {"propertyName": "petType", "mapping": {"lizard": "Lizard"}}},
            "Cat": {"allOf": [{"$ref": "#/components/schemas/Pet"},
                              {"type": "object", "required": ["huntingSkill"],
                               "properties": {"huntingSkill": {"enum": ["lazy", "aggressive"]}}}]},
            "Dog": {"allOf": [{"$ref": "#/components/schemas/Pet"},
                              {"type": "object", "required": ["packSize"],
                               "properties": {"packSize": {"type": "integer", "minimum": 0}}}]},
            "Lizard": {"type": "object", "properties": {"lovesRocks": {"type": "boolean"}}},
        }}});
        translate(&doc, version, View::Request)
    }

    /// The errors of `instance` against the translated document's schema `name`, as
    /// `(instance path, keyword)`.
    fn errors(doc: &Value, name: &str, instance: Value) -> Vec<(String, String)> {
        let mut root = doc.clone();
        root["$ref"] = json!(format!("#/components/schemas/{name}"));
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap();
        let mut out: Vec<(String, String)> = v
            .iter_errors(&instance)
            .map(|e| {
                let keyword = e.kind().keyword().to_owned();
                (e.instance_path().as_str().to_owned(), keyword)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_discriminator_on_a_base_schema_checks_the_schema_its_value_names() {
        for version in [SpecVersion::V3_0, SpecVersion::V3_1] {
            let doc = inheritance(version);
            let pet = |i: Value| errors(&doc, "Pet", i);
            let cat = json!({"name": "Tom", "petType": "Cat", "huntingSkill": "lazy"});
            assert_eq!(pet(cat.clone()), []);
            assert_eq!(
                pet(json!({"name": "Rex", "petType": "Dog", "packSize": 3})),
                []
            );
            // A dog's errors only, the base's once.
            assert_eq!(
                pet(json!({"name": 1, "petType": "Dog", "packSize": -1})),
                [
                    ("/name".into(), "type".into()),
                    ("/packSize".into(), "minimum".into())
                ]
            );
            assert_eq!(
                pet(json!({"name": "Tom", "petType": "Cat"})),
                [(String::new(), "required".into())]
            );
            // Unknown and missing values; the base's own name; a mapped schema that does
            // not extend the base is checked with it.
            assert_eq!(
                pet(json!({"name": "Tom", "petType": "Fish"})),
                [("/petType".into(), "enum".into())]
            );
            assert_eq!(
                pet(json!({"name": "Tom"})),
                [(String::new(), "required".into())]
            );
            assert_eq!(pet(json!({"name": "Tom", "petType": "Pet"})), []);
            assert_eq!(
                pet(json!({"name": "Liz", "petType": "lizard", "lovesRocks": true})),
                []
            );
            assert_eq!(
                pet(json!({"petType": "lizard", "lovesRocks": 1})),
                [
                    (String::new(), "required".into()),
                    ("/lovesRocks".into(), "type".into())
                ]
            );
            // A nested Pet dispatches too.
            assert_eq!(
                pet(
                    json!({"name": "Tom", "petType": "Pet", "friend": {"name": "Rex", "petType": "Dog"}})
                ),
                [("/friend".into(), "required".into())]
            );
            // A child checked as itself: its base once, no second dispatch.
            assert_eq!(errors(&doc, "Cat", cat), []);
            assert_eq!(
                errors(
                    &doc,
                    "Cat",
                    json!({"name": "Tom", "petType": "Dog", "huntingSkill": "lazy"})
                ),
                []
            );
        }
    }

    #[test]
    fn a_discriminator_selects_one_branch() {
        let s = json!({"oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
            "discriminator": {"propertyName": "kind", "mapping": {"kitty": "#/components/schemas/Cat"}}});
        let t = one(s, SpecVersion::V3_0, View::Request);
        assert!(t.get("oneOf").is_none());
        let all = t["allOf"].as_array().unwrap();
        assert_eq!(
            all[0]["properties"]["kind"]["enum"],
            json!(["kitty", "Dog"])
        );
        assert_eq!(all[1]["then"]["$ref"], "#/components/schemas/Cat");
        assert_eq!(all[2]["if"]["properties"]["kind"]["const"], "Dog");
    }
}
