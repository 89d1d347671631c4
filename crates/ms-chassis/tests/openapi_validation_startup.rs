//! A bad spec stops the service at startup with a message that names the file, the line
//! and what is wrong: invalid YAML, a dangling `$ref` (in another file), a schema the
//! validator rejects, and a document the OpenAPI meta-schema rejects.

use std::path::Path;

use ms_chassis::openapi::{Document, SpecError, ValidationOptions, Validator};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// Loads and compiles, as a service does at startup.
fn start(path: &Path) -> Result<Validator, SpecError> {
    let doc = Document::load(path)?;
    Validator::compile(&doc, ValidationOptions::default())
}

const HEAD: &str = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n";

#[test]
fn invalid_yaml_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "api.yaml",
        &format!("{HEAD}paths:\n  /a:\n    get: {{responses: [}}\n"),
    );
    let e = start(&p).unwrap_err().to_string();
    assert!(e.contains("api.yaml:5:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
}

#[test]
fn a_dangling_ref_in_another_file_names_that_file_its_line_and_the_ref() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "api.yaml",
        &format!("{HEAD}paths:\n  /a:\n    $ref: 'paths.yaml#/a'\n"),
    );
    write(
        dir.path(),
        "paths.yaml",
        "a:\n  get:\n    responses:\n      '200':\n        description: ok\n        content:\n          application/json:\n            schema: {$ref: '#/components/schemas/Gone'}\n",
    );
    let e = start(&p).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("paths.yaml:8:"), "{text}");
    assert!(text.contains("#/components/schemas/Gone"), "{text}");
    assert!(text.contains("dangling $ref"), "{text}");
}

#[test]
fn a_schema_the_validator_rejects_names_file_line_and_why() {
    // 3.0 schemas are caught by the OpenAPI 3.0 meta-schema, 3.1 ones (which it leaves
    // alone) by the JSON Schema 2020-12 meta-schema when they are compiled.
    for version in ["3.0.3", "3.1.0"] {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "api.yaml",
            &format!(
                "openapi: {version}\ninfo: {{title: t, version: '1'}}\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema:\n              type: object\n              properties:\n                n: {{type: integer, maxLength: -1}}\n      responses:\n        '200': {{description: ok}}\n"
            ),
        );
        let e = start(&p).unwrap_err().to_string();
        assert!(e.contains("api.yaml:12:"), "{version}: {e}");
        assert!(e.contains("properties/n/maxLength"), "{version}: {e}");
        assert!(
            e.contains("-1 is less than the minimum of 0"),
            "{version}: {e}"
        );
    }
}

#[test]
fn a_document_the_openapi_meta_schema_rejects_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "api.yaml",
        &format!(
            "{HEAD}paths:\n  /a:\n    get:\n      parameters:\n        - {{name: q, in: body, schema: {{type: string}}}}\n      responses:\n        '200': {{description: ok}}\n"
        ),
    );
    let e = start(&p).unwrap_err().to_string();
    assert!(e.contains("api.yaml:7:"), "{e}");
    assert!(e.contains("/paths/~1a/get/parameters/0"), "{e}");
    assert!(e.contains("not a valid OpenAPI 3.0 document"), "{e}");
}

#[test]
fn a_pattern_that_does_not_compile_is_named_at_its_own_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "api.yaml",
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      parameters:\n        - {name: q, in: query, schema: {type: string, pattern: '\\p{Zz}'}}\n      responses:\n        '200': {description: ok}\n",
    );
    let e = start(&p).unwrap_err().to_string();
    assert!(
        e.contains(
            "api.yaml:7: /paths/~1a/get/parameters/0/schema/pattern: the schema does not compile"
        ),
        "{e}"
    );
    // In a component the operation refers to: named where it is, not where it is used.
    let p = write(
        dir.path(),
        "api.yaml",
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      parameters:\n        - {name: q, in: query, schema: {$ref: '#/components/schemas/Q'}}\n      responses:\n        '200': {description: ok}\ncomponents:\n  schemas:\n    Q:\n      type: string\n      pattern: '[z-a]'\n",
    );
    let e = start(&p).unwrap_err().to_string();
    assert!(
        e.contains("api.yaml:14: /components/schemas/Q/pattern: the schema does not compile"),
        "{e}"
    );
}

#[test]
fn path_parameters_and_the_template_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    // {id} in the template, no `id` path parameter: nothing would check that segment.
    let p = write(
        dir.path(),
        "api.yaml",
        &format!(
            "{HEAD}paths:\n  /a/{{id}}:\n    get:\n      responses:\n        '200': {{description: ok}}\n"
        ),
    );
    let e = start(&p).unwrap_err().to_string();
    assert!(e.contains("api.yaml:5:"), "{e}");
    assert!(
        e.contains(
            "the path template \"/a/{id}\" has {id}, and no path parameter \"id\" is declared"
        ),
        "{e}"
    );
    // A path parameter the template does not have: no request could carry it.
    let p = write(
        dir.path(),
        "api.yaml",
        &format!(
            "{HEAD}paths:\n  /a:\n    get:\n      parameters:\n        - {{name: id, in: path, required: true, schema: {{type: string}}}}\n      responses:\n        '200': {{description: ok}}\n"
        ),
    );
    let e = start(&p).unwrap_err().to_string();
    assert!(e.contains("api.yaml:7:"), "{e}");
    assert!(
        e.contains("path parameter \"id\" is not in the path template \"/a\""),
        "{e}"
    );
    // Declared once for the whole path: enough for each of its operations.
    let p = write(
        dir.path(),
        "api.yaml",
        &format!(
            "{HEAD}paths:\n  /a/{{id}}:\n    parameters:\n      - {{name: id, in: path, required: true, schema: {{type: string}}}}\n    get:\n      responses:\n        '200': {{description: ok}}\n"
        ),
    );
    start(&p).unwrap();
}

#[test]
fn a_remote_ref_is_refused_and_never_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "api.yaml",
        &format!("{HEAD}paths:\n  /a:\n    $ref: 'https://example.invalid/paths.yaml#/a'\n"),
    );
    let e = start(&p).unwrap_err().to_string();
    assert!(e.contains("api.yaml:5:"), "{e}");
    assert!(e.contains("never fetched"), "{e}");
}

#[test]
fn every_fixture_spec_loads_and_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi");
    for f in ["v30.yaml", "v31.yaml", "multi/api.yaml", "recursive.yaml"] {
        start(&dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    // Bundled, the multi-file spec is one document with local refs only.
    let doc = Document::load(dir.join("multi/api.yaml")).unwrap();
    let text = doc.as_value().to_string();
    assert!(!text.contains(".yaml#"), "{text}");
    assert!(doc.as_value()["components"]["schemas"]["Part_2"].is_object());
}
