//! The located errors of a `kind = "http"` table (file, line, key, what to do).

use crate::config::test_support::*;

#[test]
fn http_errors_name_file_line_and_key() {
    let http = |rest: &str| {
        format!("[providers.a]\nkind = \"http\"\nurl = \"https://a.example/t\"\n{rest}")
    };
    let http_t = |rest: &str| http(&format!("token = \"/t\"\n{rest}"));
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "http unknown key",
            http_t("secret = \"x\"\n"),
            5,
            Some("[providers.a] key `secret`"),
            "remove it or fix its spelling; known keys: kind, \
             method, url",
        ),
        (
            "http without url",
            "[providers.a]\nkind = \"http\"\ntoken = \"/t\"\n".to_owned(),
            1,
            Some("[providers.a] key `url`"),
            "kind \"http\" needs a `url`",
        ),
        (
            "http relative url",
            format!("[providers.a]\nkind = \"http\"\nurl = \"/token?{SECRET}\"\n"),
            3,
            Some("[providers.a] key `url`"),
            "`url` is not a valid URL",
        ),
        (
            "http non-http url",
            format!("[providers.a]\nkind = \"http\"\nurl = \"mailto:{SECRET}@x\"\n"),
            3,
            Some("[providers.a] key `url`"),
            "not an http or https URL",
        ),
        (
            "http without token",
            http(""),
            1,
            Some("[providers.a] key `token`"),
            "kind \"http\" needs a `token`",
        ),
        (
            "token not a pointer",
            http("token = \"data.token\"\n"),
            4,
            Some("[providers.a] key `token`"),
            "`token` is not a JSON pointer",
        ),
        (
            "unknown method",
            http_t("method = \"PUT\"\n"),
            5,
            Some("[providers.a] key `method`"),
            "use one of: GET, POST",
        ),
        (
            "GET with a json body",
            http_t("method = \"get\"\njson = { a = 1 }\n"),
            5,
            Some("[providers.a] key `method`"),
            "method GET cannot send a body",
        ),
        (
            "GET with a form body",
            http_t("form = { a = \"1\" }\nmethod = \"GET\"\n"),
            6,
            Some("[providers.a] key `method`"),
            "method GET cannot send a body",
        ),
        (
            "json and form",
            http_t("json = { a = 1 }\nform = { a = \"1\" }\n"),
            6,
            Some("[providers.a] key `form`"),
            "`json` and `form` are both set",
        ),
        (
            "basic not a table",
            http_t(&format!("basic = \"user:{SECRET}\"\n")),
            5,
            Some("[providers.a] key `basic`"),
            "expected a table, found a string",
        ),
        (
            "basic without user",
            http_t(&format!("basic = {{ password = \"{SECRET}\" }}\n")),
            5,
            Some("[providers.a] key `basic.user`"),
            "`basic` needs a `user`",
        ),
        (
            "basic unknown key",
            http_t(&format!(
                "\n[providers.a.basic]\nuser = \"u\"\npasswd = \"{SECRET}\"\n"
            )),
            8,
            Some("[providers.a] key `basic.passwd`"),
            "known keys: user, password",
        ),
        (
            "basic empty user",
            http_t("basic = { user = \"\", password = \"${env:P}\" }\n"),
            5,
            Some("[providers.a] key `basic.user`"),
            "`basic.user` is empty",
        ),
        (
            "basic user with colon",
            http_t(&format!("basic = {{ user = \"me:{SECRET}\" }}\n")),
            5,
            Some("[providers.a] key `basic.user`"),
            "`basic.user` contains `:`",
        ),
        (
            "basic password bad template",
            http_t(&format!(
                "basic = {{ user = \"u\", password = \"{SECRET}${{env:}}\" }}\n"
            )),
            5,
            Some("[providers.a] key `basic.password`"),
            "invalid secret",
        ),
        (
            "headers not a table",
            http_t("headers = [\"X-A: b\"]\n"),
            5,
            Some("[providers.a] key `headers`"),
            "expected a table, found an array",
        ),
        (
            "header name with space",
            http_t("headers = { \"X A\" = \"b\" }\n"),
            5,
            Some("[providers.a] key `headers.\"X A\"`"),
            "not a valid HTTP header name",
        ),
        (
            "header name with newline stays on one line",
            http_t("headers = { \"X\\nA\" = \"b\" }\n"),
            5,
            Some("[providers.a] key `headers.\"X\\nA\"`"),
            "not a valid HTTP header name",
        ),
        (
            "Authorization header with basic",
            http_t("basic = { user = \"${env:U}\" }\nheaders = { authorization = \"x\" }\n"),
            6,
            Some("[providers.a] key `headers.authorization`"),
            "as well as `basic`",
        ),
        (
            "duplicate header",
            http_t("[providers.a.headers]\nX-Key = \"a\"\nx-key = \"b\"\n"),
            7,
            Some("[providers.a] key `headers.x-key`"),
            "given twice",
        ),
        (
            "empty header value",
            http_t("headers = { X-Key = \"\" }\n"),
            5,
            Some("[providers.a] key `headers.X-Key`"),
            "the header value is empty",
        ),
        (
            "header value not a string",
            http_t("headers = { X-Key = 1 }\n"),
            5,
            Some("[providers.a] key `headers.X-Key`"),
            "expected a string, found an integer",
        ),
        (
            "header value bad template",
            http_t(&format!("headers = {{ X-Key = \"{SECRET}${{file:}}\" }}\n")),
            5,
            Some("[providers.a] key `headers.X-Key`"),
            "invalid value",
        ),
        (
            "json datetime",
            http_t("[providers.a.json]\nwhen = 2024-01-31\n"),
            6,
            Some("[providers.a] key `json.when`"),
            "a TOML date or time",
        ),
        (
            "json datetime in array",
            http_t("json = { list = [\"a\", 07:30:00] }\n"),
            5,
            Some("[providers.a] key `json.list[1]`"),
            "a TOML date or time",
        ),
        (
            "json nan",
            http_t("json = { a = { b = nan } }\n"),
            5,
            Some("[providers.a] key `json.a.b`"),
            "not a finite number",
        ),
        (
            "json bad template",
            http_t(&format!(
                "json = {{ a = {{ \"b c\" = \"{SECRET}${{cmd:\" }} }}\n"
            )),
            5,
            Some("[providers.a] key `json.a.\"b c\"`"),
            "invalid value",
        ),
        (
            "form value not a string",
            http_t("form = { a = true }\n"),
            5,
            Some("[providers.a] key `form.a`"),
            "expected a string, found a boolean",
        ),
        (
            "form bad template",
            http_t(&format!("form = {{ a = \"${{env:{SECRET}\" }}\n")),
            5,
            Some("[providers.a] key `form.a`"),
            "invalid value",
        ),
        (
            "bad expires",
            http_t("expires = \"exp\"\n"),
            5,
            Some("[providers.a] key `expires`"),
            "neither \"jwt\" nor a JSON pointer",
        ),
        (
            "bad http ttl",
            http_t("ttl = \"soon\"\n"),
            5,
            Some("[providers.a] key `ttl`"),
            "not a duration",
        ),
        (
            "ok not a table",
            http_t("ok = \"/status\"\n"),
            5,
            Some("[providers.a] key `ok`"),
            "expected a table, found a string",
        ),
        (
            "ok without pointer",
            http_t("ok = { equals = \"OK\" }\n"),
            5,
            Some("[providers.a] key `ok.pointer`"),
            "`ok` needs a `pointer`",
        ),
        (
            "ok without equals",
            http_t("\n[providers.a.ok]\npointer = \"/s\"\n"),
            6,
            Some("[providers.a] key `ok.equals`"),
            "`ok` needs `equals`",
        ),
        (
            "ok equals a table",
            http_t("ok = { pointer = \"/s\", equals = {} }\n"),
            5,
            Some("[providers.a] key `ok.equals`"),
            "expected a string, integer or boolean, found a table",
        ),
        (
            "ok message not a pointer",
            http_t("ok = { pointer = \"/s\", equals = \"OK\", message = \"desc\" }\n"),
            5,
            Some("[providers.a] key `ok.message`"),
            "`ok.message` is not a JSON pointer",
        ),
        (
            "ok unknown key",
            http_t("ok = { pointer = \"/s\", equal = \"OK\" }\n"),
            5,
            Some("[providers.a] key `ok.equal`"),
            "known keys: pointer, equals, message",
        ),
        (
            "http bad scheme",
            http_t("scheme = \"digest\"\n"),
            5,
            Some("[providers.a] key `scheme`"),
            "use one of: bearer, basic, raw",
        ),
    ];
    check_errors(cases);
}
