//! What every operation of both APIs can answer besides its own results, written once and added
//! to both OpenAPI documents: the refusals of the shared extractors and layers (no or a bad
//! credential 401/403, no or a bad `Idempotency-Key` 400, a body that is not JSON 400/415, too
//! large 413, a refused value 422, the request timeout 503, an internal failure 500), each as
//! `application/problem+json` with the [`super::Problem`] schema, the `Idempotency-Key` header's
//! exact format, and the list of problem types. Handlers' annotations name what is particular to
//! them (404 `order-not-found`, 409 `not-editable`, ...); this fills in what is common, so the
//! documents say everything the servers answer.

use serde_json::{json, Map, Value};
use waybill_schemas::problem::ProblemType;

/// The exact format of `Idempotency-Key`: 1 to 255 visible ASCII characters
/// ([`waybill_schemas::IdempotencyKey::parse`]).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";

/// An order id as the servers parse it: a UUID, hyphenated or as 32 hex digits.
pub const ORDER_ID_PATTERN: &str = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$";

/// A SKU as [`waybill_schemas::Sku::parse`] reads it (surrounding white space is trimmed).
pub const SKU_PATTERN: &str = "^\\s*[A-Za-z0-9._-]{1,64}\\s*$";

/// A SKU in a JSON body: as [`SKU_PATTERN`], the white space around it what the body rule lets
/// through.
pub const SKU_BODY_PATTERN: &str = "^[\\t\\n\\r \\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*[A-Za-z0-9._-]{1,64}[\\t\\n\\r \\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$";

/// An inventory location id (`LocationId::parse`).
pub const LOCATION_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

/// A free-text field of a command body as the field parser reads it (`domain::fields::check_str`):
/// at least one character that is not white space, no control characters.
pub const TEXT_PATTERN: &str =
    "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// A string or member name the body rule lets through ([`waybill_schemas::json_body`]): no
/// control character but tab, LF and CR.
pub const NO_CONTROL_PATTERN: &str =
    "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$";

/// The white space `str::trim` removes around a value of a JSON body (Unicode `White_Space`
/// without the control characters the body rule refuses anyway).
const BODY_SPACE: &str =
    "[\\t\\n\\r \\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*";

/// A return id as the charge parser reads it: `<order id>-R<n>`.
pub const RETURN_ID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}-R[0-9]{1,9}$";

/// The schema component every request body's unnamed members refer to: any JSON value whose
/// strings and member names pass the body rule. The servers ignore members a request does not
/// define, but the body rule applies to them like to any other.
const JSON_VALUE: &str = "JsonValue";

/// Paths whose `{id}` is an order id.
const ORDER_PATHS: [&str; 4] = [
    "/v1/orders/{id}",
    "/v1/agent/orders/{id}",
    "/track/{id}",
    "/v1/me/orders/{id}",
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Completes `document` (an OpenAPI 3.1 document as JSON) in place.
pub fn complete(document: &mut Value) {
    describe_vocabulary(document);
    integral_bounds(document);
    declare_request_values(document);
    declare_particular_rules(document);
    declare_open_members(document);
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let order_path = ORDER_PATHS.iter().any(|p| path.starts_with(p));
        for method in METHODS {
            if let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) {
                if order_path {
                    declare_order_id(operation);
                }
                complete_operation(operation);
            }
        }
    }
}

/// The `{id}` path parameter of an order path has the order id's format.
/// Bounds past `i32` are written as floats in the annotations (`maximum = 1000000000000.0`); a
/// float bound makes generators send `1e12` where the server wants an integer, so integral
/// bounds are written back as integers.
fn integral_bounds(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let bound = matches!(
                    key.as_str(),
                    "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum"
                );
                match child.as_f64() {
                    Some(f)
                        if bound
                            && child.is_f64()
                            && f.fract() == 0.0
                            && f.abs() < 9.007_199_254_740_992e15 =>
                    {
                        *child = Value::from(f as i64);
                    }
                    _ => integral_bounds(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_bounds),
        _ => {}
    }
}

/// The request-body schemas (every component named `*Request`, `*RequestBody`, `Edit*`): each
/// string that states no format of its own is a free-text field (trimmed, not empty, no control
/// characters), and `currency` is one of the codes the server knows.
fn declare_request_values(document: &mut Value) {
    let currencies: Vec<Value> = waybill_schemas::Currency::codes()
        .map(|c| Value::String(c.to_owned()))
        .collect();
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        let request = name.ends_with("Request")
            || name.ends_with("RequestBody")
            || name.starts_with("Edit") && !name.ends_with("Response");
        if !request {
            continue;
        }
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (property, definition) in properties.iter_mut() {
            let is_string = match &definition["type"] {
                Value::String(t) => t == "string",
                Value::Array(types) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            if !is_string {
                continue;
            }
            if property == "currency" {
                definition["enum"] = Value::Array(currencies.clone());
            } else if definition["pattern"] == SKU_PATTERN {
                definition["pattern"] = Value::String(SKU_BODY_PATTERN.to_owned());
            } else if definition.get("pattern").is_none()
                && definition.get("enum").is_none()
                && definition.get("format").is_none()
            {
                definition["pattern"] = Value::String(TEXT_PATTERN.to_owned());
            }
        }
    }
}

/// Rules of single fields that the annotations cannot state (JSON Schema keywords utoipa does not
/// write), each stated where its parser lives and repeated here only as its schema.
fn declare_particular_rules(document: &mut Value) {
    let country = format!(
        "^{BODY_SPACE}({}){BODY_SPACE}$",
        crate::domain::pricing::address::assigned_country_codes()
            .map(|code| code
                .chars()
                .map(|c| format!("[{}{}]", c, c.to_ascii_lowercase()))
                .collect::<String>())
            .collect::<Vec<_>>()
            .join("|")
    );
    let schemas = document.pointer_mut("/components/schemas");
    let Some(schemas) = schemas.and_then(Value::as_object_mut) else {
        return;
    };
    // `inventory::Country::parse` and `address::country`: an assigned code, any case, trimmed.
    for name in ["LocationRequest", "AddressRequest"] {
        if let Some(field) = schemas
            .get_mut(name)
            .and_then(|s| s.pointer_mut("/properties/country"))
        {
            field["pattern"] = Value::String(country.clone());
        }
    }
    // `domain::place::parse_address`: the longest value of each field (after trimming).
    if let Some(address) = schemas.get_mut("AddressRequest") {
        use crate::domain::place::{MAX_CITY, MAX_NAME, MAX_POSTAL};
        for (field, max) in [
            ("name", MAX_NAME),
            ("line1", MAX_NAME),
            ("line2", MAX_NAME),
            ("city", MAX_CITY),
            ("region", MAX_CITY),
            ("postal_code", MAX_POSTAL),
        ] {
            if let Some(property) = address.pointer_mut(&format!("/properties/{field}")) {
                property["maxLength"] = json!(max);
            }
        }
    }
    // `Email::parse`: one `@` after a non-empty local part, a dotted domain that neither starts
    // nor ends with a dot, no white space or control character inside (trimmed around).
    // The same in a guest's erasure, which takes what placement took.
    for name in ["CustomerRequest", "GuestErasureRequest"] {
        if let Some(email) = schemas
            .get_mut(name)
            .and_then(|s| s.pointer_mut("/properties/email"))
        {
            let part = "[^@\\s\\u0000-\\u001F\\u007F-\\u009F";
            email["pattern"] = Value::String(format!(
                "^{BODY_SPACE}{part}]+@{part}.]{part}]*\\.{part}]*{part}.]{BODY_SPACE}$"
            ));
        }
    }
    // `domain::place`: an order has 1 to `MAX_LINES` lines.
    if let Some(lines) = schemas
        .get_mut("PlaceOrderRequest")
        .and_then(|s| s.pointer_mut("/properties/lines"))
    {
        lines["minItems"] = json!(1);
        lines["maxItems"] = json!(crate::domain::place::MAX_LINES);
    }
    // `Inventory::adjust`: a delta of zero changes nothing and is refused.
    if let Some(delta) = schemas
        .get_mut("AdjustRequest")
        .and_then(|s| s.pointer_mut("/properties/delta"))
    {
        delta["not"] = json!({"const": 0});
    }
    // `commands::charge`: a return id has the return's format (whether this order has that
    // return is decided with the order, 422 `return_id` when it has not).
    if let Some(field) = schemas
        .get_mut("ChargeRequestBody")
        .and_then(|s| s.pointer_mut("/properties/return_id"))
    {
        field["pattern"] = Value::String(RETURN_ID_PATTERN.to_owned());
    }
    // `domain::edit_request`: an edit changes a line, adds one or changes the address.
    if let Some(edit) = schemas
        .get_mut("EditRequest")
        .and_then(Value::as_object_mut)
    {
        edit.insert(
            "anyOf".to_owned(),
            json!([
                {"required": ["changes"], "properties": {"changes": {"type": "array", "minItems": 1}}},
                {"required": ["add"], "properties": {"add": {"type": "array", "minItems": 1}}},
                {"required": ["shipping_address"], "properties": {"shipping_address": {"type": "object"}}}
            ]),
        );
    }
    // `domain::edit_request`: a new address has the placement's address shape; existing lines
    // are numbered from 1.
    if let Some(address) = schemas
        .get_mut("EditRequest")
        .and_then(|s| s.pointer_mut("/properties/shipping_address"))
    {
        address["oneOf"] =
            json!([{"type": "null"}, {"$ref": "#/components/schemas/AddressRequest"}]);
    }
    // The bounds `domain::edit_request::parse` reads them with.
    let units = i64::from(waybill_schemas::Quantity::MAX);
    let bounds: [(&str, &str, i64, i64); 4] = [
        ("EditLineChange", "line_no", 1, i64::from(u32::MAX)),
        ("EditLineChange", "quantity", 0, units),
        ("EditNewLine", "quantity", 1, units),
        (
            "EditPrice",
            "amount_minor",
            1,
            crate::domain::place::MAX_AMOUNT_MINOR,
        ),
    ];
    for (schema, property, minimum, maximum) in bounds {
        if let Some(field) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
        {
            field["minimum"] = json!(minimum);
            field["maximum"] = json!(maximum);
        }
    }
    if let Some(line) = schemas.get_mut("EditNewLine") {
        line["properties"]["sku"]["pattern"] = Value::String(SKU_BODY_PATTERN.to_owned());
        line["properties"]["sku"]["maxLength"] = json!(waybill_schemas::Sku::MAX_LEN);
        line["properties"]["name"]["maxLength"] = json!(crate::domain::edit_request::MAX_NAME);
    }
    if let Some(edit) = schemas.get_mut("EditRequest") {
        for list in ["changes", "add"] {
            edit["properties"][list]["maxItems"] = json!(crate::domain::edit_request::MAX_LINES);
        }
    }
    subscription_rules(schemas);
    // `domain::returns` request parsing: a resolution object names its kind.
    if let Some(resolution) = schemas
        .get_mut("ReturnRequestBody")
        .and_then(|s| s.pointer_mut("/properties/resolution"))
    {
        resolution["oneOf"] = json!([
            {"type": "null"},
            {"type": "string", "enum": ["refund", "store_credit"]},
            {"type": "object", "required": ["kind"], "properties": {"kind": {"enum": ["refund", "store_credit"]}}},
            {"type": "object", "required": ["kind", "replacements"], "properties": {
                "kind": {"const": "exchange"},
                "replacements": {"type": "array", "minItems": 1}
            }}
        ]);
        if let Some(object) = resolution.as_object_mut() {
            object.remove("type");
        }
    }
}

/// `subscriptions::request`: event types are order event names (at most one of each kind); the
/// URL an absolute http(s) URL with a host, no credentials and no fragment (the pattern states a
/// plain subset of what the URL parser takes); the description any text, empty included; a change
/// changes at least one member.
fn subscription_rules(schemas: &mut Map<String, Value>) {
    use waybill_schemas::OrderEventKind;
    let names: Vec<Value> = OrderEventKind::ALL
        .iter()
        .map(|kind| Value::String(kind.name().to_owned()))
        .collect();
    for name in ["CreateSubscriptionRequest", "UpdateSubscriptionRequest"] {
        let Some(schema) = schemas.get_mut(name) else {
            continue;
        };
        if let Some(types) = schema.pointer_mut("/properties/event_types") {
            types["items"] = json!({"type": "string", "enum": names});
            types["maxItems"] = json!(OrderEventKind::ALL.len());
        }
        if let Some(url) = schema.pointer_mut("/properties/url") {
            url["pattern"] = Value::String(SUBSCRIPTION_URL_PATTERN.to_owned());
        }
        // Any text the body rule lets through, empty included.
        if let Some(description) = schema.pointer_mut("/properties/description") {
            description["pattern"] = Value::String(NO_CONTROL_PATTERN.to_owned());
        }
    }
    if let Some(update) = schemas
        .get_mut("UpdateSubscriptionRequest")
        .and_then(Value::as_object_mut)
    {
        let members = ["url", "event_types", "description", "secret", "status"];
        let any: Vec<Value> = members.iter().map(|m| json!({"required": [m]})).collect();
        update.insert("anyOf".to_owned(), Value::Array(any));
    }
}

/// Absolute http(s) URLs of a plain shape: a lower-case host name, an optional port, a path and
/// a query of unreserved characters.
pub const SUBSCRIPTION_URL_PATTERN: &str = "^https?://[a-z]([a-z0-9-]{0,30}[a-z0-9])?(\\.[a-z]([a-z0-9-]{0,30}[a-z0-9])?){0,4}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]{0,40}){0,8}(\\?[A-Za-z0-9._~=&-]{0,100})?$";

/// The `types` parameter of the pull feed: comma-separated order event names, blanks around
/// and empty entries ignored.
pub fn feed_types_pattern() -> String {
    let names: Vec<&str> = waybill_schemas::OrderEventKind::ALL
        .iter()
        .map(|kind| kind.name())
        .collect();
    let one = format!("[ \\t]*({})?[ \\t]*", names.join("|"));
    format!("^{one}(,{one})*$")
}

/// Every object of a request body (and a body documented as raw JSON) takes members it does not
/// define as any [`JSON_VALUE`], and names them by the body rule.
fn declare_open_members(document: &mut Value) {
    let mut named: Vec<String> = Vec::new();
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for method in METHODS {
                let Some(body) = item.pointer_mut(&format!(
                    "/{method}/requestBody/content/application~1json/schema"
                )) else {
                    continue;
                };
                if body == &json!({"type": "string"}) || body == &json!({}) {
                    *body = json!({"$ref": format!("#/components/schemas/{JSON_VALUE}")});
                }
                open_members(body, &mut named);
            }
        }
    }
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut done: Vec<String> = Vec::new();
    while let Some(name) = named.pop() {
        if done.contains(&name) {
            continue;
        }
        if let Some(schema) = schemas.get_mut(&name) {
            open_members(schema, &mut named);
        }
        done.push(name);
    }
    schemas.insert(
        JSON_VALUE.to_owned(),
        json!({
            "description": "Any JSON value whose strings and member names hold no control \
                            character but tab, LF and CR (the rule of every request body).",
            "anyOf": [
                {"type": ["null", "boolean", "number"]},
                {"type": "string", "pattern": NO_CONTROL_PATTERN},
                {"type": "array", "items": {"$ref": format!("#/components/schemas/{JSON_VALUE}")}},
                {"type": "object",
                 "propertyNames": {"pattern": NO_CONTROL_PATTERN},
                 "additionalProperties": {"$ref": format!("#/components/schemas/{JSON_VALUE}")}}
            ]
        }),
    );
}

/// Opens the objects of `schema` (not through references: those are collected in `named`).
fn open_members(schema: &mut Value, named: &mut Vec<String>) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        if let Some(name) = reference.strip_prefix("#/components/schemas/") {
            named.push(name.to_owned());
        }
        return;
    }
    if object.contains_key("properties") && !object.contains_key("additionalProperties") {
        object.insert(
            "additionalProperties".to_owned(),
            json!({"$ref": format!("#/components/schemas/{JSON_VALUE}")}),
        );
        object.insert(
            "propertyNames".to_owned(),
            json!({"pattern": NO_CONTROL_PATTERN}),
        );
    }
    for key in ["properties"] {
        if let Some(children) = object.get_mut(key).and_then(Value::as_object_mut) {
            children.values_mut().for_each(|c| open_members(c, named));
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = object.get_mut(key) {
            open_members(child, named);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(children) = object.get_mut(key).and_then(Value::as_array_mut) {
            children.iter_mut().for_each(|c| open_members(c, named));
        }
    }
}

fn declare_order_id(operation: &mut Map<String, Value>) {
    let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for parameter in parameters.iter_mut() {
        if parameter["in"] == "path" && parameter["name"] == "id" {
            parameter["schema"] = json!({"type": "string", "pattern": ORDER_ID_PATTERN});
        }
    }
}

fn complete_operation(operation: &mut Map<String, Value>) {
    let mut keyed = false;
    let mut has_parameters = false;
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        has_parameters = !parameters.is_empty();
        for parameter in parameters.iter_mut() {
            if parameter["in"] == "path" {
                let pattern = match parameter["name"].as_str() {
                    Some("sku") => Some(SKU_PATTERN),
                    Some("location") => Some(LOCATION_PATTERN),
                    _ => None,
                };
                if let Some(pattern) = pattern {
                    parameter["schema"] = json!({"type": "string", "pattern": pattern});
                }
            }
            // The pull feed's event types: names of order events (`subscription_rules`).
            if parameter["in"] == "query" && parameter["name"] == "types" {
                parameter["schema"] =
                    json!({"type": "string", "maxLength": 4096, "pattern": feed_types_pattern()});
            }
            // A currency in a query string is one of the codes the server knows.
            if parameter["in"] == "query" && parameter["name"] == "currency" {
                let codes: Vec<Value> = waybill_schemas::Currency::codes()
                    .map(|c| Value::String(c.to_owned()))
                    .collect();
                parameter["schema"] = json!({"type": "string", "enum": codes});
            }
            // A page cursor that is an order id (the review queue's).
            if parameter["in"] == "query"
                && parameter["name"] == "cursor"
                && parameter["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("order id"))
            {
                parameter["schema"] = json!({
                    "type": "string",
                    "pattern": format!("^$|{ORDER_ID_PATTERN}"),
                });
            }
            if parameter["in"] == "header"
                && parameter["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("idempotency-key"))
            {
                keyed = true;
                parameter["required"] = Value::Bool(true);
                parameter["schema"] = json!({
                    "type": "string",
                    "pattern": IDEMPOTENCY_KEY_PATTERN,
                    "minLength": 1,
                    "maxLength": 255,
                });
            }
        }
    }
    let operation_parameters = operation
        .get("parameters")
        .and_then(Value::as_array)
        .cloned();
    let has_body = operation.contains_key("requestBody");
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|requirements| {
            !requirements.is_empty()
                && requirements
                    .iter()
                    .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        });
    let html = operation_is_page(operation);

    let mut common: Vec<ProblemType> = vec![ProblemType::Internal, ProblemType::Timeout];
    if secured {
        common.extend([ProblemType::Unauthorized, ProblemType::Forbidden]);
    }
    if keyed {
        common.push(ProblemType::MissingIdempotencyKey);
    }
    if has_body {
        common.extend([
            ProblemType::MalformedJson,
            ProblemType::PayloadTooLarge,
            ProblemType::UnsupportedMediaType,
        ]);
    }
    if has_body || has_parameters {
        common.push(ProblemType::ValidationFailed);
    }
    if keyed {
        common.push(ProblemType::IdempotencyKeyReused);
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    for kind in common {
        let status = kind.status().to_string();
        let response = responses
            .entry(status)
            .or_insert_with(|| json!({"description": kind.slug()}));
        let description = response["description"].as_str().unwrap_or("").to_owned();
        if !description.contains(kind.slug()) {
            response["description"] = Value::String(if description.is_empty() {
                kind.slug().to_owned()
            } else {
                format!("{description}; {}", kind.slug())
            });
        }
    }
    // An operation with a `format` parameter (finance) also answers CSV.
    if let Some(parameters) = operation_parameters.as_ref() {
        if parameters
            .iter()
            .any(|p| p["in"] == "query" && p["name"] == "format")
        {
            for (status, response) in responses.iter_mut() {
                if status.starts_with('2') {
                    response["content"]["text/csv"] = json!({"schema": {"type": "string"}});
                }
            }
        }
    }
    // Every error answer of a JSON endpoint is a problem; a page keeps its HTML answers.
    for (status, response) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && !html {
            response["content"] = json!({
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}
                }
            });
        }
    }
}

/// Whether the operation answers HTML (the tracking page and its lookup form).
fn operation_is_page(operation: &Map<String, Value>) -> bool {
    operation
        .get("responses")
        .and_then(Value::as_object)
        .is_some_and(|responses| {
            responses.values().any(|r| {
                r.get("content")
                    .and_then(Value::as_object)
                    .is_some_and(|c| c.keys().any(|k| k.starts_with("text/html")))
            })
        })
}

/// Appends the problem types, their statuses and titles to `info.description`.
fn describe_vocabulary(document: &mut Value) {
    let mut table = String::from(
        "\n\nEvery error is `application/problem+json` (RFC 9457): `type` is \
         `https://waybill.dev/problems/<slug>`, `status` is the one status of that type, `field` \
         (and `errors[]`) name what was wrong. The types:\n\n| slug | status | title |\n|---|---|---|\n",
    );
    for kind in ProblemType::ALL {
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            kind.slug(),
            kind.status(),
            kind.title()
        ));
    }
    if let Some(info) = document.get_mut("info").and_then(Value::as_object_mut) {
        let description = info
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        info.insert(
            "description".to_owned(),
            Value::String(format!("{description}{table}")),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_command_documents_every_refusal_of_the_shared_extractor() {
        let mut doc = json!({
            "info": {"title": "t"},
            "paths": {"/v1/x": {"post": {
                "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {}}},
                "security": [{"api_key": []}],
                "responses": {"201": {"description": "ok"}, "409": {"description": "not-editable"}}
            }}}
        });
        complete(&mut doc);
        let op = &doc["paths"]["/v1/x"]["post"];
        for status in [
            "400", "401", "403", "409", "413", "415", "422", "500", "503",
        ] {
            assert_eq!(
                op["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{status}"
            );
        }
        assert!(op["responses"]["400"]["description"]
            .as_str()
            .unwrap()
            .contains("missing-idempotency-key"));
        assert_eq!(
            op["parameters"][0]["schema"]["pattern"],
            IDEMPOTENCY_KEY_PATTERN
        );
        assert!(doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("| `validation-failed` | 422 |"));
    }

    #[test]
    fn request_objects_take_unnamed_members_under_the_body_rule_and_raw_bodies_are_json() {
        let mut doc = json!({
            "info": {"title": "t"},
            "paths": {
                "/v1/x": {"post": {
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/XRequest"}}}},
                    "responses": {}
                }},
                "/v1/webhooks/y": {"post": {
                    "requestBody": {"content": {"application/json": {"schema": {"type": "string"}}}},
                    "responses": {}
                }}
            },
            "components": {"schemas": {
                "XRequest": {"type": "object", "properties": {
                    "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                    "closed": {"type": "object", "properties": {}, "additionalProperties": false}
                }},
                "Line": {"type": "object", "properties": {"sku": {"type": "string"}}},
                "Unused": {"type": "object", "properties": {"a": {"type": "string"}}}
            }}
        });
        complete(&mut doc);
        let json_value = json!({"$ref": "#/components/schemas/JsonValue"});
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["XRequest"]["additionalProperties"], json_value);
        assert_eq!(
            schemas["XRequest"]["propertyNames"]["pattern"],
            NO_CONTROL_PATTERN
        );
        assert_eq!(
            schemas["Line"]["additionalProperties"], json_value,
            "through $ref"
        );
        assert_eq!(
            schemas["XRequest"]["properties"]["closed"]["additionalProperties"], false,
            "a closed object stays closed"
        );
        assert!(schemas["Unused"].get("additionalProperties").is_none());
        assert_eq!(
            doc["paths"]["/v1/webhooks/y"]["post"]["requestBody"]["content"]["application/json"]
                ["schema"],
            json_value
        );
        assert!(schemas["JsonValue"]["anyOf"].is_array());
    }

    #[test]
    fn a_country_is_an_assigned_code_in_any_case_and_nothing_else() {
        let mut doc = json!({
            "info": {"title": "t"}, "paths": {},
            "components": {"schemas": {"LocationRequest": {"type": "object", "properties": {
                "country": {"type": "string"}
            }}}}
        });
        complete(&mut doc);
        let pattern = doc["components"]["schemas"]["LocationRequest"]["properties"]["country"]
            ["pattern"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(pattern.contains("|[Gg][Bb]|") && pattern.contains("|[Uu][Ss]|"));
        assert!(!pattern.contains("[Xx][Xx]"), "XX is not assigned");
        let codes = crate::domain::pricing::address::assigned_country_codes().count();
        assert_eq!(codes, 249);
        assert_eq!(pattern.matches('|').count(), codes - 1);
    }

    #[test]
    fn the_email_pattern_is_what_the_email_parser_accepts() {
        let mut document = json!({"components": {"schemas": {"CustomerRequest": {
            "properties": {"email": {"type": "string"}}}}}});
        declare_particular_rules(&mut document);
        let pattern = document
            .pointer("/components/schemas/CustomerRequest/properties/email/pattern")
            .and_then(Value::as_str)
            .expect("the email has a pattern");
        let regex = regex::Regex::new(pattern).expect("the pattern compiles");
        for sample in [
            "a@b.c",
            "  x.y+z@mail.example.com\u{3000}",
            "a@b..c",
            "a@b",
            "@b.c",
            "a@.b.c",
            "a@b.c.",
            "a b@c.d",
            "a@b@c.d",
            "a@b.c\u{85}d",
            "",
        ] {
            assert_eq!(
                regex.is_match(sample),
                waybill_schemas::Email::parse(sample).is_ok(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn the_key_pattern_is_what_the_key_parser_accepts() {
        let pattern = IDEMPOTENCY_KEY_PATTERN;
        assert_eq!(pattern, "^[!-~]{1,255}$");
        // '!' (0x21) to '~' (0x7E) are exactly the ASCII graphic characters.
        assert!((0x21u8..=0x7E).all(|b| b.is_ascii_graphic()));
        assert!(!b' '.is_ascii_graphic() && !0x7Fu8.is_ascii_graphic());
        assert!(waybill_schemas::IdempotencyKey::parse(&"!".repeat(255)).is_ok());
        assert!(waybill_schemas::IdempotencyKey::parse(&"!".repeat(256)).is_err());
    }
}
