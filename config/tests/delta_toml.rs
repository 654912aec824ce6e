//! The admin's delta file format (`StateDelta::from_toml`): the documented format parses into
//! the expected delta (content and content_base64, removes, settings, owner, mode spellings),
//! and every error names what is wrong and where (key and line, or the path).

mod common;

use common::*;
use config::delta_toml::{parse_mode, DeltaParseError};
use config::{Rejected, StateDelta};
use expect_test::expect;

fn error(text: &str) -> DeltaParseError {
    StateDelta::from_toml(text).expect_err("the delta file must be refused")
}

#[test]
fn the_documented_format_parses() {
    let delta = StateDelta::from_toml(
        r#"
[[file]]
path = "/etc/motd"        # absolute inside the node's root
mode = "0644"             # octal string
owner = "root:root"       # optional
content = "hello\n"

[[file]]
path = "/usr/lib/firmware/blob.bin"
mode = "0o600"
content_base64 = "AAEC/w=="

[[file]]
path = "/etc/profile.d/site.sh"
mode = "755"
owner = "root"
content = """
export SITE=hpc
"""

[[remove]]
path = "/etc/old.conf"

[[remove]]
path = "/etc/cron.d/legacy"

[settings]
"ntp.server" = "10.0.0.1"
image = "rocky9"
"#,
    )
    .expect("the documented example parses");
    let expected = d()
        .file("/etc/motd", "hello\n")
        .owned("/etc/motd", "root:root")
        .file_mode("/usr/lib/firmware/blob.bin", 0o600, &[0, 1, 2, 255])
        .file_mode("/etc/profile.d/site.sh", 0o755, b"export SITE=hpc\n")
        .owned("/etc/profile.d/site.sh", "root")
        .rm("/etc/old.conf")
        .rm("/etc/cron.d/legacy")
        .set("ntp.server", "10.0.0.1")
        .set("image", "rocky9");
    assert_eq!(delta, expected);
}

#[test]
fn an_empty_file_is_an_empty_delta() {
    assert_eq!(StateDelta::from_toml("").unwrap(), StateDelta::default());
    assert_eq!(
        StateDelta::from_toml("# only a comment\n[settings]\n").unwrap(),
        StateDelta::default()
    );
}

#[test]
fn base64_content_may_be_wrapped_in_whitespace_and_be_empty() {
    let delta = StateDelta::from_toml(
        "[[file]]\npath = \"/a\"\nmode = \"0600\"\ncontent_base64 = \"  aGk=\\n\"\n\
         [[file]]\npath = \"/b\"\nmode = \"0\"\ncontent_base64 = \"\"\n",
    )
    .unwrap();
    assert_eq!(
        delta,
        d().file_mode("/a", 0o600, b"hi").file_mode("/b", 0, b"")
    );
}

#[test]
fn mode_spellings() {
    assert_eq!(parse_mode("0644"), Some(0o644));
    assert_eq!(parse_mode("644"), Some(0o644));
    assert_eq!(parse_mode("0o644"), Some(0o644));
    assert_eq!(parse_mode("7777"), Some(0o7777));
    assert_eq!(parse_mode("07777"), Some(0o7777));
    assert_eq!(parse_mode("0"), Some(0));
    for bad in [
        "",
        "0o",
        "10000",
        "000644",
        "0o10000",
        "8",
        "0x1a4",
        "rw-r--r--",
        "+644",
        "-644",
        " 644",
        "644 ",
        "0O644",
        "６４４",
    ] {
        assert_eq!(parse_mode(bad), None, "{bad:?}");
    }
}

#[test]
fn unknown_keys_name_the_key_and_the_line() {
    let top = error("[settings]\na = \"1\"\n\n[[files]]\npath = \"/a\"\n");
    assert!(matches!(top, DeltaParseError::Toml(_)));
    let message = top.to_string();
    assert!(
        message.contains("files") && message.contains("line 4"),
        "{message}"
    );
    expect![[r#"
        delta file is not valid: TOML parse error at line 4, column 3
          |
        4 | [[files]]
          |   ^^^^^
        unknown field `files`, expected one of `file`, `link`, `remove`, `settings`
    "#]]
    .assert_eq(&message);

    let in_file = error("[[file]]\npath = \"/a\"\nmode = \"0644\"\ncontent = \"\"\nmod = \"x\"\n");
    let message = in_file.to_string();
    assert!(
        message.contains("mod") && message.contains("line 5"),
        "{message}"
    );
    expect![[r#"
        delta file is not valid: TOML parse error at line 5, column 1
          |
        5 | mod = "x"
          | ^^^
        unknown field `mod`, expected one of `path`, `mode`, `owner`, `content`, `content_base64`
    "#]]
    .assert_eq(&message);

    let in_remove = error("[[remove]]\npath = \"/a\"\nrecursive = true\n");
    let message = in_remove.to_string();
    assert!(
        message.contains("recursive") && message.contains("line 3"),
        "{message}"
    );
}

#[test]
fn type_and_syntax_errors_name_the_line() {
    let message = error("[settings]\nthreads = 8\n").to_string();
    assert!(message.contains("line 2"), "{message}");
    let message = error("[[file]]\npath = \"/a\"\n").to_string();
    assert!(message.contains("mode"), "missing field: {message}");
    let message = error("[[file]\n").to_string();
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn bad_mode() {
    let err = error("[[file]]\npath = \"/a\"\nmode = \"0999\"\ncontent = \"\"\n");
    assert!(matches!(&err, DeltaParseError::Mode { path, mode } if path == "/a" && mode == "0999"));
    expect![[r#"file "/a": mode "0999" is not an octal string like "0644" (at most 7777)"#]]
        .assert_eq(&err.to_string());
    let err = error("[[file]]\npath = \"/a\"\nmode = \"17777\"\ncontent = \"\"\n");
    assert!(matches!(err, DeltaParseError::Mode { .. }));
}

#[test]
fn exactly_one_content_field() {
    let both = error(
        "[[file]]\npath = \"/a\"\nmode = \"0644\"\ncontent = \"x\"\ncontent_base64 = \"eA==\"\n",
    );
    assert!(matches!(&both, DeltaParseError::Content { path } if path == "/a"));
    expect![[r#"file "/a": give exactly one of `content` and `content_base64`"#]]
        .assert_eq(&both.to_string());
    let neither = error("[[file]]\npath = \"/a\"\nmode = \"0644\"\n");
    assert!(matches!(&neither, DeltaParseError::Content { path } if path == "/a"));
}

#[test]
fn bad_base64() {
    for bad in ["not base64!", "eA=", "eA==eA=="] {
        let err = error(&format!(
            "[[file]]\npath = \"/a\"\nmode = \"0644\"\ncontent_base64 = \"{bad}\"\n"
        ));
        assert!(
            matches!(&err, DeltaParseError::Base64 { path, .. } if path == "/a"),
            "{bad:?}: {err}"
        );
    }
    let err = error("[[file]]\npath = \"/a\"\nmode = \"0644\"\ncontent_base64 = \"a b\"\n");
    expect![[r#"file "/a": content_base64 is not valid base64: Invalid symbol 32, offset 1."#]]
        .assert_eq(&err.to_string());
}

#[test]
fn duplicate_paths() {
    let files = error(
        "[[file]]\npath = \"/a\"\nmode = \"0644\"\ncontent = \"1\"\n\
         [[file]]\npath = \"/a\"\nmode = \"0600\"\ncontent = \"2\"\n",
    );
    assert!(matches!(&files, DeltaParseError::Duplicate { path } if path == "/a"));
    expect![[r#"path "/a" appears twice in the delta"#]].assert_eq(&files.to_string());
    let removes = error("[[remove]]\npath = \"/a\"\n[[remove]]\npath = \"/a\"\n");
    assert!(matches!(&removes, DeltaParseError::Duplicate { path } if path == "/a"));
    // TOML itself refuses a duplicate settings key.
    let settings = error("[settings]\na = \"1\"\na = \"2\"\n");
    assert!(matches!(settings, DeltaParseError::Toml(_)));
}

#[test]
fn escaping_paths() {
    for (path, reason) in [
        (
            "/etc/../shadow",
            "has a '.' or '..' component that could escape the root",
        ),
        ("etc/motd", "is not absolute (must start with '/')"),
        (
            "/etc//motd",
            "has an empty component ('//' or a trailing '/')",
        ),
        ("/etc\\\\motd", "contains NUL or a backslash"),
    ] {
        let err = error(&format!(
            "[[file]]\npath = \"{path}\"\nmode = \"0644\"\ncontent = \"\"\n"
        ));
        let unescaped = path.replace("\\\\", "\\");
        assert!(
            matches!(&err, DeltaParseError::Invalid(Rejected::InvalidPath { path: p, reason: r })
                if *p == unescaped && *r == reason),
            "{path}: {err}"
        );
        let err = error(&format!("[[remove]]\npath = \"{path}\"\n"));
        assert!(
            matches!(&err, DeltaParseError::Invalid(Rejected::InvalidPath { .. })),
            "{path}: {err}"
        );
    }
    let err = error("[[remove]]\npath = \"/a/..\"\n");
    expect![[r#"invalid path "/a/..": has a '.' or '..' component that could escape the root"#]]
        .assert_eq(&err.to_string());
}

#[test]
fn written_and_removed() {
    let err = error(
        "[[file]]\npath = \"/a\"\nmode = \"0644\"\ncontent = \"\"\n[[remove]]\npath = \"/a\"\n",
    );
    assert!(matches!(
        &err,
        DeltaParseError::Invalid(Rejected::InvalidPath { path, reason: "is both written and removed" })
            if path == "/a"
    ));
    expect![[r#"invalid path "/a": is both written and removed"#]].assert_eq(&err.to_string());
}

#[test]
fn invalid_owner_and_setting_key() {
    let err =
        error("[[file]]\npath = \"/a\"\nmode = \"0644\"\nowner = \"root group\"\ncontent = \"\"\n");
    assert!(matches!(
        &err,
        DeltaParseError::Invalid(Rejected::InvalidName { what: "owner", .. })
    ));
    let err = error("[settings]\n\"bad key\" = \"1\"\n");
    assert!(matches!(
        &err,
        DeltaParseError::Invalid(Rejected::InvalidName {
            what: "setting key",
            ..
        })
    ));
    expect![[r#"invalid setting key "bad key": has a character outside [A-Za-z0-9._-]"#]]
        .assert_eq(&err.to_string());
}

#[test]
fn a_parsed_delta_is_accepted_by_apply() {
    let delta = StateDelta::from_toml(
        "[[file]]\npath = \"/etc/motd\"\nmode = \"0644\"\ncontent = \"hi\"\n\
         [[remove]]\npath = \"/etc/issue\"\n[settings]\nk = \"v\"\n",
    )
    .unwrap();
    let mut state = config::JournalState::new();
    apply_checked(&mut state, commit(global(), delta.clone())).unwrap();
    assert_eq!(state.scope_config(&global()), &delta);
}

#[test]
fn links_parse_and_share_the_path_namespace_with_files() {
    let delta = StateDelta::from_toml(
        r#"
[[link]]
path = "/etc/systemd/system/multi-user.target.wants/foo.service"
target = "/usr/lib/systemd/system/foo.service"

[[link]]
path = "/bin"
target = "usr/bin"
"#,
    )
    .unwrap();
    assert_eq!(
        delta,
        d().link(
            "/etc/systemd/system/multi-user.target.wants/foo.service",
            "/usr/lib/systemd/system/foo.service"
        )
        .link("/bin", "usr/bin")
    );
    assert!(delta.files["/bin"].is_symlink());

    // One path is a file or a link, not both; a link has no mode, owner or content.
    let both = "[[file]]\npath = \"/a\"\nmode = \"0644\"\ncontent = \"\"\n\
                [[link]]\npath = \"/a\"\ntarget = \"b\"\n";
    assert!(matches!(error(both), DeltaParseError::Duplicate { .. }));
    let with_mode = "[[link]]\npath = \"/a\"\ntarget = \"b\"\nmode = \"0777\"\n";
    assert!(error(with_mode).to_string().contains("unknown field"));
    let escaping = "[[link]]\npath = \"/a/../b\"\ntarget = \"b\"\n";
    assert!(matches!(
        error(escaping),
        DeltaParseError::Invalid(Rejected::InvalidPath { .. })
    ));
    let empty = "[[link]]\npath = \"/a\"\ntarget = \"\"\n";
    assert!(matches!(
        error(empty),
        DeltaParseError::Invalid(Rejected::InvalidSymlink { .. })
    ));
}
