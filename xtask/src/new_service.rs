//! `cargo xtask new-service <name>`: writes a compiling skeleton service from the
//! template in `xtask/template/` and registers it everywhere a service is listed.
//!
//! - `template/tree/` mirrors the repository: every `*.tmpl` file is written to the
//!   same path without `.tmpl`, placeholders replaced in its path and its text
//!   (`services/<name>/…`, `proto/crm/<name_snake>/v1/<name_snake>.proto`);
//! - `template/snippets/` holds the chart values entry and the compose block, added to
//!   the `services:` map of `helm/crm-platform/values.yaml` and `docker-compose.yml`;
//! - the service gets a fixed local port in `xtask/src/main.rs` (`PORTS`), a database
//!   in `k8s/dependencies.yaml`, and `k8s/platform.yaml` is rendered again when helm is
//!   installed.
//!
//! Placeholders: `{{name}}` (kebab case, as typed: folder, crate, binary, chart key),
//! `{{name_snake}}` (Rust crate path, proto package, database, settings section,
//! permissions), `{{Name}}` (type names), `{{NAME}}` (environment prefix) and
//! `{{port}}` (local port). An unknown placeholder is an error, so a typo in the
//! template fails the generation (and CI) instead of landing in a service.
//!
//! Nothing is written unless every check passes: a valid name, no existing service,
//! crate or contract area of that name, no file of the skeleton already present.
//! What cannot be filled in mechanically is printed at the end.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Longest accepted name: keeps `crm-<name>-headless` (Kubernetes, 63) and
/// `crm_dev_<id>_<name_snake>` (PostgreSQL, 63) within their limits.
const MAX_NAME_LEN: usize = 40;

/// Rust keywords (strict and reserved): a crate or module of that name does not compile.
const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static",
    "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do",
    "final", "gen", "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Contract areas that are not services (`proto/crm/<area>/`).
const RESERVED_AREAS: &[&str] = &["common", "events"];

/// The spellings of a service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `service-request`
    pub kebab: String,
    /// `service_request`
    pub snake: String,
    /// `ServiceRequest`
    pub pascal: String,
    /// `SERVICE_REQUEST`
    pub upper: String,
}

impl Names {
    /// Checks `name` (lower-case kebab case: words of at least two lower-case letters
    /// and digits, each starting with a letter, joined by single hyphens; at most
    /// [`MAX_NAME_LEN`] characters; no Rust keyword, no shared contract area) and spells
    /// it every way the template needs. (A one-letter word or one starting with a digit
    /// would make the generated code's names disagree: `a-b` → `ABService`, whose server
    /// module prost names `ab_service_server`, not `a_b_service_server`.)
    pub fn parse(name: &str) -> Result<Self, String> {
        let word_ok = |word: &str| {
            word.len() >= 2
                && word.starts_with(|c: char| c.is_ascii_lowercase())
                && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        if !name.split('-').all(word_ok) {
            return Err(format!(
                "`{name}` is not a service name: lower-case words (letters and digits, at least two characters, \
                 starting with a letter) joined by single hyphens, e.g. `service-request`"
            ));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(format!("`{name}` is longer than {MAX_NAME_LEN} characters"));
        }
        let snake = name.replace('-', "_");
        if RUST_KEYWORDS.contains(&snake.as_str()) {
            return Err(format!("`{name}` is a Rust keyword; its crate or module would not compile"));
        }
        if RESERVED_AREAS.contains(&snake.as_str()) {
            return Err(format!("`{name}` is a shared contract area (proto/crm/{snake}/), not a service name"));
        }
        let pascal = name
            .split('-')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            })
            .collect();
        Ok(Self { kebab: name.to_string(), upper: snake.to_ascii_uppercase(), snake, pascal })
    }
}

/// `text` with every placeholder replaced; an unknown or unclosed placeholder is an
/// error naming it.
pub fn substitute(text: &str, names: &Names, port: u16) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed placeholder at `{}`", &rest[start..]))?;
        let value = match &after[..end] {
            "name" => names.kebab.clone(),
            "name_snake" => names.snake.clone(),
            "Name" => names.pascal.clone(),
            "NAME" => names.upper.clone(),
            "port" => port.to_string(),
            other => return Err(format!("unknown placeholder {{{{{other}}}}}")),
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Adds `entry` (lines indented by two spaces, starting with `  <key>:`) to the
/// top-level `map:` of a YAML file, after its last entry. An existing entry `key` is
/// an error.
pub fn add_to_top_level_map(yaml: &str, map: &str, key: &str, entry: &str) -> Result<String, String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let header = format!("{map}:");
    let start = lines.iter().position(|l| l.trim_end() == header).ok_or_else(|| format!("no top-level `{map}:`"))?;
    let is_top_level = |l: &&str| !l.is_empty() && !l.starts_with(' ') && !l.starts_with('#');
    let end = lines[start + 1..].iter().position(is_top_level).map_or(lines.len(), |i| start + 1 + i);
    let own = format!("  {key}:");
    if lines[start + 1..end].iter().any(|l| l.trim_end() == own) {
        return Err(format!("`{map}:` already has an entry `{key}`"));
    }
    // After the map's last non-blank line; separated by a blank line when its entries are.
    let last = (start..end).rev().find(|&i| !lines[i].trim().is_empty()).unwrap_or(start);
    let mut out: Vec<String> = lines[..=last].iter().map(|l| l.to_string()).collect();
    if lines[start + 1..last].iter().any(|l| l.trim().is_empty()) {
        out.push(String::new());
    }
    out.extend(entry.trim_end_matches('\n').lines().map(str::to_string));
    out.extend(lines[last + 1..].iter().map(|l| l.to_string()));
    Ok(out.join("\n") + "\n")
}

/// Gives `service` a fixed local port in the `PORTS` table of `xtask/src/main.rs`
/// (the next after the highest), unless it has one; returns the source and the port.
pub fn add_port(main_rs: &str, service: &str) -> Result<(String, u16), String> {
    const TABLE: &str = "const PORTS: &[(&str, u16)] = &[";
    let start = main_rs.find(TABLE).ok_or("no `PORTS` table in xtask/src/main.rs")? + TABLE.len();
    let end = start + main_rs[start..].find("];").ok_or("unterminated `PORTS` table")?;
    let mut highest = 0u16;
    for entry in main_rs[start..end].split("),") {
        let Some((quoted, port)) = entry.trim().trim_start_matches('(').split_once(',') else { continue };
        let port: u16 = port.trim().trim_end_matches(')').parse().map_err(|e| format!("PORTS entry `{entry}`: {e}"))?;
        if quoted.trim().trim_matches('"') == service {
            return Ok((main_rs.to_string(), port));
        }
        highest = highest.max(port);
    }
    let port = highest + 1;
    let mut out = main_rs.to_string();
    out.insert_str(end, &format!("    (\"{service}\", {port}),\n"));
    Ok((out, port))
}

/// Adds `CREATE DATABASE <database>;` after the last such line (the development
/// cluster's `k8s/dependencies.yaml`), unless it is there.
pub fn add_database(yaml: &str, database: &str) -> Result<String, String> {
    let statement = format!("CREATE DATABASE {database};");
    if yaml.lines().any(|l| l.trim() == statement) {
        return Ok(yaml.to_string());
    }
    let lines: Vec<&str> = yaml.lines().collect();
    let last = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("CREATE DATABASE "))
        .ok_or("no `CREATE DATABASE` line in k8s/dependencies.yaml")?;
    let indent = &lines[last][..lines[last].len() - lines[last].trim_start().len()];
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.insert(last + 1, format!("{indent}{statement}"));
    Ok(out.join("\n") + "\n")
}

/// Every `*.tmpl` file under `dir`, sorted.
fn template_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            template_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "tmpl") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Whether a package of the workspace or one of its dependencies is called `name`
/// (`cargo -p <name>` would be ambiguous, `use <name>::…` might name the other one).
fn crate_name_taken(root: &Path, name: &str) -> bool {
    let line = format!("name = \"{name}\"");
    std::fs::read_to_string(root.join("Cargo.lock")).is_ok_and(|lock| lock.lines().any(|l| l.trim() == line))
}

/// Writes the service `name` into the repository at `root`; returns what is left to
/// fill in by hand.
pub fn generate(root: &Path, name: &str) -> Result<Vec<String>, String> {
    let names = Names::parse(name)?;
    if root.join("services").join(name).exists() {
        return Err(format!("services/{name} exists already"));
    }
    if root.join("proto/crm").join(&names.snake).exists() {
        return Err(format!("proto/crm/{} exists already (another service's contracts)", names.snake));
    }
    if crate_name_taken(root, name) {
        return Err(format!("a crate called `{name}` is in Cargo.lock already (the workspace or a dependency)"));
    }
    let template = root.join("xtask/template");

    // Everything is computed and checked first; files are written only then.
    let main_rs = root.join("xtask/src/main.rs");
    let (main_text, port) = add_port(&read(&main_rs)?, name)?;
    let mut writes: Vec<(PathBuf, String)> = Vec::new();
    let tree = template.join("tree");
    let mut files = Vec::new();
    template_files(&tree, &mut files)?;
    for file in &files {
        let relative = file.strip_prefix(&tree).map_err(|e| e.to_string())?.to_string_lossy();
        let relative = substitute(relative.trim_end_matches(".tmpl"), &names, port)?;
        let target = root.join(&relative);
        if target.exists() {
            return Err(format!("{relative} exists already"));
        }
        let text = substitute(&read(file)?, &names, port).map_err(|e| format!("{}: {e}", file.display()))?;
        writes.push((target, text));
    }
    let snippet = |file: &str| -> Result<String, String> {
        let path = template.join("snippets").join(file);
        substitute(&read(&path)?, &names, port).map_err(|e| format!("{}: {e}", path.display()))
    };
    let values = root.join("helm/crm-platform/values.yaml");
    writes.push((
        values.clone(),
        add_to_top_level_map(&read(&values)?, "services", name, &snippet("helm-values.yaml.tmpl")?)?,
    ));
    let compose = root.join("docker-compose.yml");
    let compose_text = add_to_top_level_map(&read(&compose)?, "services", name, &snippet("docker-compose.yml.tmpl")?)?;
    writes.push((compose, compose_text));
    let dependencies = root.join("k8s/dependencies.yaml");
    writes.push((dependencies.clone(), add_database(&read(&dependencies)?, &format!("crm_{}", names.snake))?));
    writes.push((main_rs, main_text));

    for (path, text) in &writes {
        write(path, text)?;
        println!("  wrote {}", path.strip_prefix(root).unwrap_or(path).display());
    }

    let mut remaining = Vec::new();
    // The template is formatted for one name; another name's lengths rewrap lines.
    let sources: Vec<&PathBuf> =
        writes.iter().map(|(p, _)| p).filter(|p| p.extension().is_some_and(|e| e == "rs")).collect();
    let formatted = Command::new("rustfmt").arg("--edition").arg("2024").args(&sources).current_dir(root).status();
    if !formatted.is_ok_and(|s| s.success()) {
        remaining.push(format!("format the new code: `cargo fmt -p {name}` (rustfmt did not run)"));
    }
    let rendered = Command::new("bash").arg("k8s/render.sh").current_dir(root).status();
    if !rendered.is_ok_and(|s| s.success()) {
        remaining.push("render k8s/platform.yaml again: `k8s/render.sh` (needs helm)".into());
    }
    remaining.extend([
        format!("fill in the TODOs: `grep -rn TODO services/{name} proto/crm/{}`", names.snake),
        "replace the example (RPC, table, event, consumer) with the service's own; keep one handler file per RPC \
         family in src/grpc/ and every RPC in src/access.rs POLICY"
            .to_string(),
        format!(
            "permission `{}.write`: add it to docs/auth.md and grant it to the roles that need it (a new identity \
             migration, as services/identity/migrations/0002_details_permission.sql does)",
            names.snake
        ),
        "secrets, if the service has any: `secretEnv` in helm/crm-platform/values.yaml, an entry in \
         values-production.yaml (existingSecret, resources), a development value in docker-compose.yml and in \
         xtask/src/dev.rs DEV_SECRETS; docs/deploy.md (secrets, sizing)"
            .to_string(),
        format!(
            "README.md (status, architecture, configuration of `[{}]`) and docs/glossary.md for new words",
            names.snake
        ),
    ]);
    Ok(remaining)
}

/// The command: `cargo xtask new-service <name>`.
pub fn run(args: &[String]) -> Result<(), String> {
    let [name] = args else { return Err("usage: cargo xtask new-service <name>   (lower-case kebab case)".into()) };
    let root = crate::workspace_root();
    println!("new service {name}:");
    let remaining = generate(&root, name)?;
    println!("\n`cargo test -p {name}` builds it and runs its test (Cargo.lock gains the crate). Still to do by hand:");
    for item in remaining {
        println!("  - {item}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(name: &str) -> Names {
        Names::parse(name).unwrap()
    }

    #[test]
    fn a_name_is_spelled_every_way_the_template_needs() {
        let cases = [
            ("demo", "demo", "Demo", "DEMO"),
            ("service-request", "service_request", "ServiceRequest", "SERVICE_REQUEST"),
            ("kyc2-check", "kyc2_check", "Kyc2Check", "KYC2_CHECK"),
            ("ab-cd", "ab_cd", "AbCd", "AB_CD"),
        ];
        for (kebab, snake, pascal, upper) in cases {
            let n = names(kebab);
            assert_eq!(
                (n.kebab.as_str(), n.snake.as_str(), n.pascal.as_str(), n.upper.as_str()),
                (kebab, snake, pascal, upper)
            );
        }
    }

    #[test]
    fn only_lower_case_kebab_names_that_compile_are_accepted() {
        let refused = [
            "",
            "Demo",
            "demo_svc",
            "demo-",
            "-demo",
            "demo--svc",
            "2fa",
            "demo svc",
            "démo",
            "self",
            "type",
            "a-b",
            "abc-2x",
            "x",
            "common",
            "events",
        ];
        for name in refused {
            assert!(Names::parse(name).is_err(), "{name:?} must be refused");
        }
        assert!(Names::parse(&"a".repeat(MAX_NAME_LEN)).is_ok());
        assert!(Names::parse(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
        for name in ["demo", "service-request", "notification", "kyc2-check", "types", "async-jobs"] {
            assert!(Names::parse(name).is_ok(), "{name:?} must be accepted");
        }
    }

    #[test]
    fn placeholders_are_replaced_and_unknown_ones_refused() {
        let n = names("service-request");
        let text = "{{name}} {{name_snake}} {{Name}}Api CRM_{{NAME}}__X {{port}} { braces } {x}";
        assert_eq!(
            substitute(text, &n, 50057).unwrap(),
            "service-request service_request ServiceRequestApi CRM_SERVICE_REQUEST__X 50057 { braces } {x}"
        );
        assert!(substitute("{{nmae}}", &n, 1).unwrap_err().contains("{{nmae}}"));
        assert!(substitute("{{name", &n, 1).is_err());
    }

    #[test]
    fn an_entry_goes_after_the_last_one_of_the_map_and_a_second_one_is_refused() {
        let yaml = "a: 1\nservices:\n  one:\n    x: 1\n\n  two:\n    y: 2\n\nvolumes:\n  data: {}\n";
        let added = add_to_top_level_map(yaml, "services", "three", "  three:\n    z: 3\n").unwrap();
        let expected =
            "a: 1\nservices:\n  one:\n    x: 1\n\n  two:\n    y: 2\n\n  three:\n    z: 3\n\nvolumes:\n  data: {}\n";
        assert_eq!(added, expected);
        let at_end = add_to_top_level_map("services:\n  one: {}\n", "services", "two", "  two: {}\n").unwrap();
        assert_eq!(at_end, "services:\n  one: {}\n  two: {}\n");
        assert!(add_to_top_level_map(yaml, "services", "two", "  two: {}\n").is_err());
        assert!(add_to_top_level_map("other:\n", "services", "x", "  x: {}\n").is_err());
    }

    #[test]
    fn a_new_service_gets_the_next_free_port_and_a_listed_one_keeps_its_own() {
        let src = "const PORTS: &[(&str, u16)] = &[\n    (\"identity\", 50051),\n    (\"notification\", 50056),\n];\n";
        let (added, port) = add_port(src, "demo").unwrap();
        assert_eq!(port, 50057);
        assert!(added.ends_with("    (\"notification\", 50056),\n    (\"demo\", 50057),\n];\n"));
        assert_eq!(add_port(src, "notification").unwrap(), (src.to_string(), 50056));
    }

    #[test]
    fn a_database_is_added_once_after_the_others() {
        let yaml = "data:\n  01.sql: |\n    CREATE DATABASE crm_identity;\n    CREATE DATABASE crm_x;\n---\n";
        let added = add_database(yaml, "crm_demo").unwrap();
        assert_eq!(
            added,
            "data:\n  01.sql: |\n    CREATE DATABASE crm_identity;\n    CREATE DATABASE crm_x;\n    CREATE DATABASE crm_demo;\n---\n"
        );
        assert_eq!(add_database(&added, "crm_demo").unwrap(), added);
    }

    #[test]
    fn the_template_uses_only_known_placeholders() {
        let template = crate::workspace_root().join("xtask/template");
        let mut files = Vec::new();
        template_files(&template, &mut files).unwrap();
        assert!(files.len() > 10, "the template is in xtask/template");
        let n = names("demo");
        for file in files {
            substitute(&file.to_string_lossy(), &n, 1).unwrap();
            substitute(&read(&file).unwrap(), &n, 1).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
    }

    /// Copies `relative` (a file or a folder) of the repository into `to`.
    fn copy(relative: &str, to: &Path) {
        let from = crate::workspace_root().join(relative);
        let target = to.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let status = Command::new("cp").arg("-r").arg(&from).arg(&target).status().unwrap();
        assert!(status.success(), "cp {}", from.display());
    }

    #[test]
    fn a_service_is_written_and_registered_in_a_copy_of_the_repository() {
        let root = std::env::temp_dir().join(format!("crm-new-service-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for part in [
            "xtask/template",
            "xtask/src/main.rs",
            "helm/crm-platform/values.yaml",
            "docker-compose.yml",
            "k8s/dependencies.yaml",
            "Cargo.lock",
            "rustfmt.toml",
            "proto",
            "services/identity/Cargo.toml",
        ] {
            copy(part, &root);
        }

        generate(&root, "loan-review").unwrap();
        let text = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
        for path in [
            "services/loan-review/Cargo.toml",
            "services/loan-review/src/lib.rs",
            "services/loan-review/src/settings.rs",
            "services/loan-review/tests/api/helpers.rs",
            "services/loan-review/migrations/0001_loan_review.sql",
            "proto/crm/loan_review/v1/loan_review.proto",
        ] {
            assert!(!text(path).contains("{{"), "{path} has a placeholder left");
        }
        assert!(text("services/loan-review/Cargo.toml").contains("name = \"loan-review\""));
        assert!(text("services/loan-review/src/lib.rs").contains("LoanReviewServiceServer"));
        assert!(text("proto/crm/loan_review/v1/loan_review.proto").contains("package crm.loan_review.v1;"));
        let values = text("helm/crm-platform/values.yaml");
        assert!(values.contains("\n  loan-review:\n"), "values entry");
        assert!(values.ends_with("    callees: [identity]\n"), "the entry is the last of `services:`");
        assert!(text("docker-compose.yml").contains(
            "      CRM_LOAN_REVIEW__DATABASE__URL: postgres://postgres:postgres@postgres:5432/crm_loan_review\n"
        ));
        assert!(text("docker-compose.yml").contains("    ports: [\"50057:50051\"]\n"));
        assert!(text("xtask/src/main.rs").contains("    (\"loan-review\", 50057),\n];"));
        assert!(text("k8s/dependencies.yaml").contains("    CREATE DATABASE crm_loan_review;\n"));

        let again = generate(&root, "loan-review").unwrap_err();
        assert!(again.contains("services/loan-review exists already"), "{again}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_existing_service_is_refused_and_nothing_is_written() {
        let root = crate::workspace_root();
        let error = generate(&root, "identity").unwrap_err();
        assert!(error.contains("services/identity exists already"), "{error}");
        let error = generate(&root, "customer").unwrap_err();
        assert!(error.contains("proto/crm/customer exists already"), "{error}");
        let error = generate(&root, "xtask").unwrap_err();
        assert!(error.contains("in Cargo.lock already"), "{error}");
        let error = generate(&root, "tokio").unwrap_err();
        assert!(error.contains("in Cargo.lock already"), "{error}");
    }
}
