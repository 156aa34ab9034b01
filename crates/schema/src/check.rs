//! A frame against its table's definition: every documented column present with its type, no
//! null where none is allowed, and (for frames being written) nothing undocumented.

use polars::prelude::{DataFrame, DataType, Schema};

use crate::error::SchemaError;
use crate::tables::{TableDef, AXIS_PREFIX};

/// What to do with columns the table does not document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraColumns {
    /// An error: what is written is exactly what docs/results.md lists.
    Refuse,
    /// Left alone: a reader takes what it knows (a newer writer may add columns).
    Ignore,
}

/// The types a swept-key column may have.
pub fn is_axis_dtype(dtype: &DataType) -> bool {
    matches!(
        dtype,
        DataType::Int64 | DataType::Float64 | DataType::Boolean | DataType::String
    )
}

/// Checks the columns of `schema` against `table`: each documented column present with its
/// documented type; `axis.<key>` columns (tables with swept keys only) typed Int64, Float64,
/// Boolean or String; anything else refused or ignored as `extra` says.
pub fn check_columns(
    table: &'static TableDef,
    schema: &Schema,
    extra: ExtraColumns,
) -> Result<(), SchemaError> {
    for def in table.columns {
        let Some(dtype) = schema.get(def.name) else {
            return Err(SchemaError::column(table.name, def.name, "is missing"));
        };
        if *dtype != def.ty.dtype() {
            return Err(SchemaError::column(
                table.name,
                def.name,
                format!("has type {dtype}, the schema says {}", def.ty.doc_name()),
            ));
        }
    }
    for (name, dtype) in schema.iter() {
        if table.column(name).is_some() {
            continue;
        }
        if table.axes_after.is_some() && name.starts_with(AXIS_PREFIX) {
            if !is_axis_dtype(dtype) {
                return Err(SchemaError::column(
                    table.name,
                    name.as_str(),
                    format!("has type {dtype}; a swept key is Int64, Float64, Boolean or String"),
                ));
            }
        } else if extra == ExtraColumns::Refuse {
            return Err(SchemaError::column(
                table.name,
                name.as_str(),
                "is not in the schema (docs/results.md)",
            ));
        }
    }
    Ok(())
}

/// Checks that the columns the table declares non-nullable hold no null.
pub fn check_nulls(table: &'static TableDef, df: &DataFrame) -> Result<(), SchemaError> {
    for def in table.columns.iter().filter(|d| !d.nullable) {
        if let Ok(c) = df.column(def.name) {
            if c.null_count() > 0 {
                return Err(SchemaError::column(
                    table.name,
                    def.name,
                    "has a null value, and the schema allows none",
                ));
            }
        }
    }
    Ok(())
}
