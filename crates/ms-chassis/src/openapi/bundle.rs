//! Bundling: a spec split over several files becomes one document whose every `$ref` is
//! local, parts from other files hoisted into `components` (path items inlined in place).
//!
//! One self-contained document is what the validator's registry, `/openapi.json` and
//! Swagger UI all need, and hoisting under `components` (rather than inlining everything)
//! keeps recursive schemas finite: a part is named before its own refs are followed, so a
//! cycle ends at the name. References are never fetched from the network, and never read
//! outside the root spec's directory tree, because the bundle is published as it is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::document::{Diagnostic, SourceFile, SpecError, escape, parse, unescape};

/// A bundled document and where its parts came from.
#[derive(Debug)]
pub(crate) struct Bundled {
    pub(crate) value: Value,
    pub(crate) files: Vec<SourceFile>,
    pub(crate) origins: BTreeMap<String, (usize, String)>,
}

/// Bundles the spec at `path` and the files it refers to.
pub(crate) fn bundle_file(path: &Path) -> Result<Bundled, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let canonical = path.canonicalize().map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let root_dir = canonical.parent().unwrap_or(Path::new("/")).to_path_buf();
    bundle(&text, path, Some(canonical), root_dir)
}

/// Bundles a spec given as text; other files resolve against the current directory.
pub(crate) fn bundle_text(text: &str, name: &Path) -> Result<Bundled, SpecError> {
    let root_dir = std::env::current_dir()
        .and_then(|d| d.canonicalize())
        .unwrap_or_else(|_| PathBuf::from("."));
    bundle(text, name, None, root_dir)
}

fn bundle(
    text: &str,
    shown: &Path,
    canonical: Option<PathBuf>,
    root_dir: PathBuf,
) -> Result<Bundled, SpecError> {
    let (root, file) = parse(text, shown)?;
    let mut b = Bundler {
        root_dir: root_dir.clone(),
        files: vec![file],
        values: vec![root.clone()],
        dirs: vec![
            canonical
                .as_deref()
                .and_then(Path::parent)
                .map_or(root_dir, Path::to_path_buf),
        ],
        by_path: HashMap::new(),
        hoisted: HashMap::new(),
        taken: HashMap::new(),
        components: Vec::new(),
        inlining: Vec::new(),
        origins: BTreeMap::from([(String::new(), (0, String::new()))]),
        errors: Vec::new(),
    };
    if let Some(c) = canonical {
        b.by_path.insert(c, 0);
    }
    if let Some(Value::Object(components)) = root.get("components") {
        for (kind, entries) in components {
            if let Value::Object(entries) = entries {
                b.taken
                    .entry(kind.clone())
                    .or_default()
                    .extend(entries.keys().cloned());
            }
        }
    }
    let mut value = root;
    b.walk(&mut value, 0, &mut String::new(), &mut String::new());
    if !b.errors.is_empty() {
        return Err(SpecError::Invalid(b.errors));
    }
    if !b.components.is_empty() {
        let Value::Object(top) = &mut value else {
            unreachable!("a document with refs to hoist is an object");
        };
        let components = top
            .entry("components")
            .or_insert_with(|| Value::Object(Map::new()));
        if !components.is_object() {
            return Err(SpecError::one(
                shown,
                b.files[0].line_of("/components"),
                "/components",
                "expected an object".into(),
            ));
        }
        for (kind, name, part) in b.components {
            components
                .as_object_mut()
                .expect("checked above")
                .entry(kind)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .map(|m| m.insert(name, part));
        }
    }
    Ok(Bundled {
        value,
        files: b.files,
        origins: b.origins,
    })
}

struct Bundler {
    root_dir: PathBuf,
    files: Vec<SourceFile>,
    values: Vec<Value>,
    /// Each file's directory, against which its relative refs resolve.
    dirs: Vec<PathBuf>,
    by_path: HashMap<PathBuf, usize>,
    /// (file, pointer in it) → the local ref of its hoisted copy.
    hoisted: HashMap<(usize, String), String>,
    /// Names in use per `components` section.
    taken: HashMap<String, HashSet<String>>,
    components: Vec<(String, String, Value)>,
    /// Path items being inlined, to refuse a cycle of them.
    inlining: Vec<(usize, String)>,
    origins: BTreeMap<String, (usize, String)>,
    errors: Vec<Diagnostic>,
}

/// Members whose values are data, not spec: a `$ref` in them is not a reference.
fn is_data(key: &str) -> bool {
    matches!(key, "example" | "default" | "enum" | "const") || key.starts_with("x-")
}

impl Bundler {
    /// Rewrites every `$ref` under `v` (a part of file `file`, at `src` in it and at `site`
    /// in the bundle) to a local one.
    fn walk(&mut self, v: &mut Value, file: usize, src: &mut String, site: &mut String) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let r = r.clone();
                    if let Some(replacement) = self.reference(&r, file, src, site) {
                        match replacement {
                            Resolved::Ref(local) => {
                                map.insert("$ref".into(), Value::String(local));
                            }
                            Resolved::Inline(part) => {
                                *v = part;
                                return;
                            }
                        }
                    }
                }
                self.mapping(map, file, src, site);
                for (k, child) in map.iter_mut() {
                    if is_data(k) || k == "$ref" || k == "discriminator" {
                        continue;
                    }
                    let (sl, tl) = (src.len(), site.len());
                    push(src, k);
                    push(site, k);
                    self.walk(child, file, src, site);
                    src.truncate(sl);
                    site.truncate(tl);
                }
            }
            Value::Array(items) => {
                // 3.1 `examples` in a schema is an array of data.
                if site.ends_with("/examples") {
                    return;
                }
                for (i, child) in items.iter_mut().enumerate() {
                    let (sl, tl) = (src.len(), site.len());
                    push(src, &i.to_string());
                    push(site, &i.to_string());
                    self.walk(child, file, src, site);
                    src.truncate(sl);
                    site.truncate(tl);
                }
            }
            _ => {}
        }
    }

    /// A `discriminator.mapping` names schemas by reference too: those in other files are
    /// hoisted like any `$ref`.
    fn mapping(&mut self, map: &mut Map<String, Value>, file: usize, src: &str, site: &str) {
        let Some(Value::Object(mapping)) = map
            .get_mut("discriminator")
            .and_then(|d| d.get_mut("mapping"))
        else {
            return;
        };
        for target in mapping.values_mut() {
            let Value::String(r) = target else {
                continue;
            };
            // A bare name (`Cat`) means `#/components/schemas/Cat` of the root.
            if !r.contains(['#', '/']) && !r.ends_with(".yaml") && !r.ends_with(".json") {
                continue;
            }
            let r = r.clone();
            let at = format!("{site}/discriminator");
            if let Some(Resolved::Ref(local)) = self.reference(&r, file, src, &at) {
                *target = Value::String(local);
            }
        }
    }

    fn fail(&mut self, file: usize, src: &str, message: String) {
        let at = format!("{src}/$ref");
        self.errors.push(Diagnostic {
            file: Some(self.files[file].path.clone()),
            line: self.files[file].line_of(&at),
            pointer: Some(src.to_owned()),
            message,
        });
    }

    /// What the `$ref` `r` at `src` of `file` becomes; `None` after an error.
    fn reference(&mut self, r: &str, file: usize, src: &str, site: &str) -> Option<Resolved> {
        let (target_file, fragment) = match self.target(r, file) {
            Ok(t) => t,
            Err(message) => {
                self.fail(file, src, message);
                return None;
            }
        };
        if self.values[target_file].pointer(&fragment).is_none() {
            let where_ = if target_file == file {
                "this file".to_owned()
            } else {
                self.files[target_file].path.display().to_string()
            };
            self.fail(
                file,
                src,
                format!("dangling $ref {r:?}: {where_} has nothing at {fragment:?}"),
            );
            return None;
        }
        if target_file == 0 {
            return Some(Resolved::Ref(format!("#{fragment}")));
        }
        // A path item (`paths: {/a: {$ref: paths.yaml#/a}}`): `components` has no place for
        // one in 3.0, so it is inlined.
        if is_path_item(site) {
            let key = (target_file, fragment.clone());
            if self.inlining.contains(&key) {
                self.fail(file, src, format!("$ref {r:?} makes a cycle of path items"));
                return None;
            }
            self.inlining.push(key);
            let mut part = self.values[target_file]
                .pointer(&fragment)
                .cloned()
                .unwrap_or_default();
            self.origins
                .insert(site.to_owned(), (target_file, fragment.clone()));
            let mut inner_src = fragment.clone();
            self.walk(&mut part, target_file, &mut inner_src, &mut site.to_owned());
            self.inlining.pop();
            return Some(Resolved::Inline(part));
        }
        let key = (target_file, fragment.clone());
        if let Some(local) = self.hoisted.get(&key) {
            return Some(Resolved::Ref(local.clone()));
        }
        let (kind, wanted) = component_name(&fragment, site, &self.files[target_file].path);
        let taken = self.taken.entry(kind.clone()).or_default();
        let mut name = wanted.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{wanted}_{n}");
            n += 1;
        }
        taken.insert(name.clone());
        let at = format!("/components/{}/{}", escape(&kind), escape(&name));
        let local = format!("#{at}");
        // Named before its own refs are followed: a cycle ends here.
        self.hoisted.insert(key, local.clone());
        self.origins
            .insert(at.clone(), (target_file, fragment.clone()));
        let mut part = self.values[target_file]
            .pointer(&fragment)
            .cloned()
            .unwrap_or_default();
        self.walk(
            &mut part,
            target_file,
            &mut fragment.clone(),
            &mut at.clone(),
        );
        self.components.push((kind, name, part));
        Some(Resolved::Ref(local))
    }

    /// The file and JSON pointer `r` names, loading the file on first use.
    fn target(&mut self, r: &str, file: usize) -> Result<(usize, String), String> {
        let (path, fragment) = r.split_once('#').unwrap_or((r, ""));
        let fragment = percent_encoding::percent_decode_str(fragment)
            .decode_utf8()
            .map_err(|_| format!("$ref {r:?}: its fragment is not UTF-8"))?
            .into_owned();
        if !fragment.is_empty() && !fragment.starts_with('/') {
            return Err(format!(
                "$ref {r:?}: only JSON pointer fragments (#/...) are supported"
            ));
        }
        if path.is_empty() {
            return Ok((file, fragment));
        }
        if let Some((scheme, _)) = path.split_once(':')
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && scheme.len() > 1
        {
            return Err(format!(
                "$ref {r:?}: remote and {scheme}: references are refused (never fetched); \
                 bundle the file locally and refer to it by relative path"
            ));
        }
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| format!("$ref {r:?}: its path is not UTF-8"))?;
        let joined = self.dirs[file].join(decoded.as_ref());
        let canonical = joined
            .canonicalize()
            .map_err(|e| format!("dangling $ref {r:?}: cannot open {}: {e}", joined.display()))?;
        if !canonical.starts_with(&self.root_dir) {
            return Err(format!(
                "$ref {r:?} leaves the spec's directory ({}): refused, since the bundle is \
                 published as it is",
                self.root_dir.display()
            ));
        }
        if let Some(&i) = self.by_path.get(&canonical) {
            return Ok((i, fragment));
        }
        let text = std::fs::read_to_string(&canonical)
            .map_err(|e| format!("dangling $ref {r:?}: cannot read {}: {e}", joined.display()))?;
        let shown = shown_path(&self.files[file].path, path);
        let (value, source) = parse(&text, &shown).map_err(|e| e.to_string())?;
        let i = self.files.len();
        self.files.push(source);
        self.values.push(value);
        self.dirs
            .push(canonical.parent().unwrap_or(Path::new("/")).to_path_buf());
        self.by_path.insert(canonical, i);
        Ok((i, fragment))
    }
}

enum Resolved {
    Ref(String),
    Inline(Value),
}

fn push(pointer: &mut String, segment: &str) {
    pointer.push('/');
    pointer.push_str(&escape(segment));
}

/// How a referenced file is named in messages: beside the file that refers to it.
fn shown_path(from: &Path, relative: &str) -> PathBuf {
    let joined = from.parent().unwrap_or(Path::new("")).join(relative);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether `site` (a pointer in the bundle) is a path item: `/paths/{path}`.
fn is_path_item(site: &str) -> bool {
    site.strip_prefix("/paths/")
        .is_some_and(|rest| !rest.contains('/'))
}

/// The `components` section and name for a part at `fragment` of `file`, referred to
/// from `site`.
fn component_name(fragment: &str, site: &str, file: &Path) -> (String, String) {
    let segments: Vec<String> = fragment
        .split('/')
        .skip(1)
        .map(|s| unescape(s).into_owned())
        .collect();
    if segments.len() == 3 && segments[0] == "components" {
        return (segments[1].clone(), sanitize(&segments[2]));
    }
    let name = segments
        .iter()
        .rev()
        .find(|s| !s.is_empty() && s.parse::<usize>().is_err())
        .cloned()
        .or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "part".into());
    (site_kind(site).into(), sanitize(&name))
}

/// The `components` section a `$ref` at `site` refers into.
fn site_kind(site: &str) -> &'static str {
    let segs: Vec<&str> = site.split('/').collect();
    let n = segs.len();
    let last = segs.last().copied().unwrap_or("");
    let parent = if n >= 2 { segs[n - 2] } else { "" };
    let in_schema = segs
        .iter()
        .any(|s| matches!(*s, "schema" | "schemas" | "properties" | "items"));
    if in_schema || parent == "properties" {
        return "schemas";
    }
    match (parent, last) {
        ("parameters", _) => "parameters",
        ("responses", _) => "responses",
        (_, "requestBody") | ("requestBodies", _) => "requestBodies",
        ("headers", _) => "headers",
        ("examples", _) => "examples",
        ("links", _) => "links",
        ("callbacks", _) => "callbacks",
        ("securitySchemes", _) => "securitySchemes",
        _ => "schemas",
    }
}

/// A component name OpenAPI allows (`^[a-zA-Z0-9.\-_]+$`).
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "part".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn refs_across_files_are_hoisted_and_clashes_suffixed() {
        let dir = tempfile::tempdir().unwrap();
        let root = write(
            dir.path(),
            "api.yaml",
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    $ref: 'paths/a.yaml#/a'\ncomponents:\n  schemas:\n    Pet: {type: string}\n",
        );
        write(
            dir.path(),
            "paths/a.yaml",
            "a:\n  post:\n    requestBody:\n      content:\n        application/json:\n          schema: {$ref: '../schemas.yaml#/components/schemas/Pet'}\n    responses:\n      '200': {description: ok}\n",
        );
        write(
            dir.path(),
            "schemas.yaml",
            "components:\n  schemas:\n    Pet:\n      type: object\n      properties:\n        child: {$ref: '#/components/schemas/Pet'}\n        tag: {$ref: 'tag.yaml'}\n",
        );
        write(dir.path(), "tag.yaml", "type: string\nmaxLength: 3\n");
        let b = bundle_file(&root).unwrap();
        let v = &b.value;
        assert_eq!(
            v["paths"]["/a"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Pet_2"
        );
        let pet2 = &v["components"]["schemas"]["Pet_2"];
        assert_eq!(
            pet2["properties"]["child"]["$ref"],
            "#/components/schemas/Pet_2"
        );
        assert_eq!(
            pet2["properties"]["tag"]["$ref"],
            "#/components/schemas/tag"
        );
        assert_eq!(v["components"]["schemas"]["tag"]["maxLength"], 3);
        assert_eq!(v["components"]["schemas"]["Pet"]["type"], "string");
    }

    #[test]
    fn a_dangling_ref_names_file_line_and_ref() {
        let dir = tempfile::tempdir().unwrap();
        let root = write(
            dir.path(),
            "api.yaml",
            "openapi: 3.0.3\ncomponents:\n  schemas:\n    A:\n      $ref: '#/components/schemas/Nope'\n",
        );
        let e = bundle_file(&root).unwrap_err().to_string();
        assert!(e.contains("api.yaml:5:"), "{e}");
        assert!(e.contains("#/components/schemas/Nope"), "{e}");
        let root = write(dir.path(), "b.yaml", "a: {$ref: 'missing.yaml#/x'}\n");
        let e = bundle_file(&root).unwrap_err().to_string();
        assert!(e.contains("b.yaml:1:") && e.contains("missing.yaml"), "{e}");
    }

    #[test]
    fn remote_and_escaping_refs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("spec");
        write(dir.path(), "outside.yaml", "type: string\n");
        let root = write(
            &sub,
            "api.yaml",
            "a: {$ref: 'https://example.com/x.yaml'}\nb: {$ref: '../outside.yaml'}\n",
        );
        let e = bundle_file(&root).unwrap_err();
        let d = e.diagnostics();
        assert_eq!(d.len(), 2, "{e}");
        assert!(d[0].message.contains("never fetched"), "{e}");
        assert!(d[1].message.contains("leaves the spec's directory"), "{e}");
    }

    #[test]
    fn data_members_are_not_references() {
        let b = bundle_text(
            "example: {$ref: nowhere}\ndefault: {$ref: nowhere}\n",
            Path::new("x.yaml"),
        )
        .unwrap();
        assert_eq!(b.value["example"]["$ref"], "nowhere");
    }
}
