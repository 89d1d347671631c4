//! `ms-chassis new <name>`: a new service, production-shaped from its first commit.
//!
//! The template is embedded in the binary (`templates/service/`), so generating needs no
//! network and no git, and every CLI carries the template of its own chassis version. Each
//! file is a minijinja template with delimiters of its own (`[[ ]]`, `[% %]`, `[# #]`),
//! because Helm, Prometheus and Grafana files are full of `{{ }}`, and with strict undefined,
//! so a misspelt variable fails instead of rendering empty. Everything is rendered in memory
//! first: a bad name, a taken directory or a template error writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use include_dir::{Dir, include_dir};
use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::Failure;

/// The service template; its manifest is `Cargo.toml.tmpl`, since `cargo package` drops any
/// folder holding a `Cargo.toml`.
static TEMPLATE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates/service");

/// The longest name: Helm refuses release names over 53 characters, and the name is the
/// release's.
const MAX_NAME: usize = 53;

/// Names a service cannot take: Rust keywords and crates Cargo reserves, and the crates
/// the generated service depends on (a package cannot depend on its own name).
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
    "alloc",
    "core",
    "std",
    "test",
    "proc-macro",
    "build",
    "deps",
    "examples",
    "incremental",
    "ms-chassis",
    "serde",
    "serde-json",
    "tokio",
    "utoipa",
    "utoipa-axum",
    "axum",
    "reqwest",
];

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The service's name: a crate name and a DNS-1123 label at once (lowercase letters,
    /// digits and `-`, starting with a letter, at most 53 characters). It names the crate,
    /// the binary, the Helm release and the Kubernetes objects.
    name: String,
    /// The directory to create [default: ./NAME]. It must not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// Where the API contract comes from: `code` documents the routes with utoipa, `spec`
    /// starts from a hand-written api.yaml, `none` has no contract. With either contract,
    /// requests are validated against it before the handler runs.
    #[arg(long, value_enum, default_value_t = Contract::Code)]
    openapi: Contract,
    /// Depend on the ms-chassis checkout at PATH (the repository root) instead of the
    /// released crate: for offline builds and the chassis's own CI.
    #[arg(long, value_name = "PATH")]
    chassis_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Contract {
    /// The routes are documented in code with utoipa; the spec comes from them.
    Code,
    /// A hand-written api.yaml is the contract (spec-first).
    Spec,
    /// No OpenAPI contract.
    None,
}

impl Contract {
    /// The value the templates test: `[% if openapi == "spec" %]`.
    fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Spec => "spec",
            Self::None => "none",
        }
    }
}

/// What the templates see. Ports and shutdown timing are here, not only in config.yaml, so
/// that the Dockerfile, compose file and Helm chart are rendered from the same numbers.
fn context(name: &str, openapi: Contract, chassis_dependency: &str) -> minijinja::Value {
    minijinja::context! {
        name,
        crate_name => name.replace('-', "_"),
        chassis_version => env!("CARGO_PKG_VERSION"),
        // The `ms-chassis = …` value in Cargo.toml.
        chassis_dependency,
        openapi => openapi.as_str(),
        http_port => 8080,
        management_port => 9090,
        drain_delay_secs => 5,
        grace_secs => 25,
    }
}

pub(crate) fn run(args: NewArgs) -> Result<ExitCode, Failure> {
    check_name(&args.name)
        .map_err(|why| Failure(format!("invalid service name {:?}: {why}", args.name)))?;
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    check_target(&dir)?;
    let dependency = chassis_dependency(args.chassis_path.as_deref())?;
    let files = render(&args.name, args.openapi, &dependency)?;
    write_all(&dir, &files)?;
    print_summary(&dir, &args.name, args.openapi, &files);
    Ok(ExitCode::SUCCESS)
}

/// Why `name` cannot be a crate name and a DNS-1123 label at once, if it cannot.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "it has {} characters; at most {MAX_NAME} fit a Helm release name",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{c:?} is not allowed: use lowercase letters, digits and '-' (it becomes a \
             Kubernetes name, a DNS-1123 label)"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("it must start with a lowercase letter".into());
    }
    if name.ends_with('-') {
        return Err("it must not end with '-'".into());
    }
    if RESERVED.contains(&name) {
        return Err(
            "it is a Rust keyword, a name Cargo reserves, or a crate the service \
                    depends on"
                .into(),
        );
    }
    Ok(())
}

/// A directory to generate into must be new, or empty.
fn check_target(dir: &Path) -> Result<(), Failure> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(Failure(format!(
                "{} already exists and is not empty; choose another --path, or empty it",
                dir.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Failure(format!(
            "{} already exists and is a file; choose another --path",
            dir.display()
        ))),
        Err(e) => Err(Failure(format!("cannot read {}: {e}", dir.display()))),
    }
}

/// The released crate at the CLI's own version, or a checkout's, by absolute path.
fn chassis_dependency(checkout: Option<&Path>) -> Result<String, Failure> {
    let version = env!("CARGO_PKG_VERSION");
    let Some(root) = checkout else {
        return Ok(format!("\"{version}\""));
    };
    let crate_dir = root.join("crates/ms-chassis");
    if !crate_dir.join("Cargo.toml").is_file() {
        return Err(Failure(format!(
            "--chassis-path {}: no crates/ms-chassis/Cargo.toml there; expected the root of \
             an ms-chassis checkout",
            root.display()
        )));
    }
    let crate_dir = crate_dir
        .canonicalize()
        .map_err(|e| Failure(format!("--chassis-path {}: {e}", root.display())))?;
    let path = crate_dir.to_str().ok_or_else(|| {
        Failure(format!(
            "--chassis-path {}: the path is not UTF-8, which Cargo.toml cannot hold",
            root.display()
        ))
    })?;
    // A TOML basic string: JSON's escaping of `"` and `\` is the same.
    let path = serde_json::to_string(path).map_err(|e| Failure(e.to_string()))?;
    Ok(format!("{{ version = \"{version}\", path = {path} }}"))
}

/// Every file of the service, by its path in the service, rendered.
fn render(
    name: &str,
    openapi: Contract,
    chassis_dependency: &str,
) -> Result<BTreeMap<PathBuf, String>, Failure> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .block_delimiters("[%", "%]")
            .variable_delimiters("[[", "]]")
            .comment_delimiters("[#", "#]")
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| Failure(format!("the template syntax: {e}")))?,
    );
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Nothing is HTML or JSON-escaped: the values are names and numbers, and a `.json`
    // template must not get quoted strings.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    let mut sources = Vec::new();
    collect(&TEMPLATE, &mut sources);
    for &(template, source) in &sources {
        env.add_template(template, source)
            .map_err(|e| template_error(template, &e))?;
    }
    let values = context(name, openapi, chassis_dependency);
    let mut out = BTreeMap::new();
    for &(template, _) in &sources {
        if !wanted(template, openapi) {
            continue;
        }
        let text = env
            .get_template(template)
            .and_then(|t| t.render(&values))
            .map_err(|e| template_error(template, &e))?;
        out.insert(output_path(template, name), text);
    }
    Ok(out)
}

/// Every file under `dir`, by its path relative to the template root (names that include
/// other templates use), with its text.
fn collect(dir: &Dir<'static>, out: &mut Vec<(&'static str, &'static str)>) {
    for file in dir.files() {
        let name = file.path().to_str().expect("template paths are UTF-8");
        let text = file
            .contents_utf8()
            .unwrap_or_else(|| panic!("template file {name} is not UTF-8"));
        out.push((name, text));
    }
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

/// Whether a template file belongs in a service with this contract: `api.yaml` only in a
/// spec-first one.
fn wanted(name: &str, contract: Contract) -> bool {
    match name {
        "api.yaml" => contract == Contract::Spec,
        _ => true,
    }
}

/// `__name__` in a path becomes the service's name, and a trailing `.tmpl` goes.
fn output_path(template: &str, name: &str) -> PathBuf {
    let path = template.replace("__name__", name);
    PathBuf::from(path.strip_suffix(".tmpl").unwrap_or(&path))
}

fn template_error(name: &str, e: &minijinja::Error) -> Failure {
    // A template bug, not the user's: say which file and where.
    let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
    Failure(format!(
        "the embedded template {name}{line} failed to render: {e}"
    ))
}

/// Writes every file; if one fails, removes what this run wrote, so a failed run leaves
/// nothing behind. The directory was new or empty, so everything in it is this run's.
fn write_all(dir: &Path, files: &BTreeMap<PathBuf, String>) -> Result<(), Failure> {
    let existed = dir.exists();
    let result = files.iter().try_for_each(|(path, text)| {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, text)
    });
    result.map_err(|e| {
        let cleanup = if existed {
            empty_out(dir)
        } else {
            std::fs::remove_dir_all(dir)
        };
        let left = cleanup
            .err()
            .map(|c| format!("; cleaning up also failed ({c}), so some files remain"))
            .unwrap_or_default();
        Failure(format!(
            "cannot write the service into {}: {e}{left}",
            dir.display()
        ))
    })
}

/// Removes everything inside `dir`, keeping `dir` itself.
fn empty_out(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(path)?;
        } else {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

fn print_summary(dir: &Path, name: &str, openapi: Contract, files: &BTreeMap<PathBuf, String>) {
    let contract = match openapi {
        Contract::Code => "an OpenAPI contract from code (utoipa), enforced",
        Contract::Spec => "the hand-written contract api.yaml, enforced",
        Contract::None => "no OpenAPI contract",
    };
    println!(
        "Created service `{}` in {} ({} files), with {contract}:",
        name,
        dir.display(),
        files.len()
    );
    for path in files.keys() {
        println!("  {}", path.display());
    }
    println!();
    println!("Next:");
    println!("  cd {}", dir.display());
    println!("  cargo test");
    println!("  MS_PROFILE=dev cargo run");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_must_be_a_crate_name_and_a_dns_label() {
        for good in ["orders", "order-events", "a", "svc2", "a-b-c"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Orders", "'O'"),
            ("order_events", "'_'"),
            ("2fast", "start with a lowercase letter"),
            ("-x", "start with a lowercase letter"),
            ("orders-", "end with '-'"),
            ("ms-chassis", "depends on"),
            ("fn", "keyword"),
            ("test", "reserves"),
            ("café", "'é'"),
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_name(&"a".repeat(53)).is_ok());
        assert!(
            check_name(&"a".repeat(54))
                .unwrap_err()
                .contains("54 characters")
        );
    }

    #[test]
    fn paths_take_the_name_and_lose_tmpl() {
        assert_eq!(
            output_path("Cargo.toml.tmpl", "x"),
            PathBuf::from("Cargo.toml")
        );
        assert_eq!(
            output_path("deploy/helm/__name__/Chart.yaml", "orders"),
            PathBuf::from("deploy/helm/orders/Chart.yaml")
        );
    }

    #[test]
    fn every_variant_renders() {
        for openapi in [Contract::Code, Contract::Spec, Contract::None] {
            let files = render("order-events", openapi, "\"0.1.0\"")
                .unwrap_or_else(|e| panic!("{openapi:?}: {}", e.0));
            assert!(files.contains_key(Path::new("Cargo.toml")), "{openapi:?}");
            assert_eq!(
                files.contains_key(Path::new("api.yaml")),
                openapi == Contract::Spec
            );
            for (path, text) in &files {
                assert!(
                    !text.contains("[["),
                    "{openapi:?} {}: [[ left",
                    path.display()
                );
                assert!(!text.contains("__name__"), "{}", path.display());
            }
        }
    }
}
