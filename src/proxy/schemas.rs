//! The JSON Schemas of proxied events (`EVENT_SCHEMAS_DIR`): one draft 2020-12 schema per
//! event, in `<event>.json`, compiled once at start with the `jsonschema` crate.

use std::{collections::HashMap, path::Path};

use crate::error::{AppError, Details};

/// Most failing locations reported for one event argument (a schema can fail an argument in
/// thousands of places; the first ones are enough to fix it).
const MAX_REPORTED: usize = 20;

/// The compiled schemas, by event name.
#[derive(Default)]
pub struct Schemas(HashMap<String, jsonschema::Validator>);

impl Schemas {
    /// Reads every `*.json` file of `dir`. A file that is not JSON or not a valid schema is an
    /// error naming the file.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut schemas = HashMap::new();
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            let Some(event) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|e| format!("schema {}: {e}", path.display()))?;
            let schema: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("schema {}: not JSON: {e}", path.display()))?;
            let validator = jsonschema::draft202012::new(&schema)
                .map_err(|e| format!("schema {}: not a valid JSON Schema: {e}", path.display()))?;
            schemas.insert(event.to_string(), validator);
        }
        Ok(Self(schemas))
    }

    /// Whether `event` has a schema.
    pub fn has(&self, event: &str) -> bool {
        self.0.contains_key(event)
    }

    /// Checks `data` against `event`'s schema, if it has one: `validation_failed` with each
    /// failing location as a dotted path (`items.0.qty`; the argument itself is `_`).
    pub fn check(&self, event: &str, data: &serde_json::Value) -> Result<(), AppError> {
        let Some(validator) = self.0.get(event) else {
            return Ok(());
        };
        let mut details = Details::new();
        for error in validator.iter_errors(data).take(MAX_REPORTED) {
            let path = dotted(error.instance_path());
            // Masked: the message names the rule, not the value (which may be large).
            details.entry(path).or_default().push(error.masked().to_string());
        }
        if details.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(details))
        }
    }
}

/// A location as a dotted path; the root is `_`, as for every DTO.
fn dotted(location: &jsonschema::paths::Location) -> String {
    let parts: Vec<String> = location.segments().map(|s| s.to_string()).collect();
    if parts.is_empty() {
        "_".to_string()
    } else {
        parts.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas(files: &[(&str, &str)]) -> Result<Schemas, String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Schemas::load(dir.path())
    }

    #[test]
    fn failures_are_keyed_by_dotted_path() {
        let order = r#"{
            "type": "object",
            "required": ["items"],
            "properties": { "items": { "type": "array", "items": {
                "type": "object", "required": ["qty"],
                "properties": { "qty": { "type": "integer", "minimum": 1 } } } } }
        }"#;
        let s = schemas(&[("order.place.json", order), ("notes.txt", "not a schema")]).unwrap();
        assert!(s.has("order.place") && !s.has("notes"));
        assert!(s.check("order.place", &json!({ "items": [{ "qty": 2 }] })).is_ok());
        assert!(s.check("other", &json!({})).is_ok(), "no schema, no rule");
        let Err(AppError::Validation(d)) = s.check("order.place", &json!({ "items": [{ "qty": 2 }, { "qty": 0 }] }))
        else {
            panic!("expected validation_failed");
        };
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["items.1.qty"]);
        let Err(AppError::Validation(d)) = s.check("order.place", &json!({})) else {
            panic!("expected validation_failed");
        };
        assert!(d.contains_key("_"), "{d:?}");
        assert!(!d["_"][0].contains("items\": ["), "values are masked: {d:?}");
    }

    #[test]
    fn a_broken_schema_file_is_named() {
        let err = schemas(&[("bad.json", "{ nope")]).err().unwrap();
        assert!(err.contains("bad.json") && err.contains("not JSON"), "{err}");
        let err = schemas(&[("worse.json", r#"{ "type": 12 }"#)]).err().unwrap();
        assert!(err.contains("worse.json"), "{err}");
    }
}
