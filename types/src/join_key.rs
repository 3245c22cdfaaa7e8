//! Which type a view's join key has — the rule every path (serving, materialization, pushes,
//! retrieval) uses to type entity values, so the same entity always gives the same key bytes.

use larder_protos::feast::types::value_type::Enum as ValueType;

/// The type of a join key: the view's entity column type when it declares one; else the type
/// the entity with this join key declares; else `STRING` (what Feast serializes an untyped key
/// as). `entity` is `None` when no entity has this join key.
pub fn join_key_type(column: ValueType, entity: Option<ValueType>) -> ValueType {
    [Some(column), entity]
        .into_iter()
        .flatten()
        .find(|t| *t != ValueType::Invalid)
        .unwrap_or(ValueType::String)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_then_the_entity_then_string() {
        use ValueType::*;
        assert_eq!(join_key_type(Int64, Some(String)), Int64);
        assert_eq!(join_key_type(Invalid, Some(Int32)), Int32);
        assert_eq!(join_key_type(Invalid, Some(Invalid)), String);
        assert_eq!(join_key_type(Invalid, None), String);
        assert_eq!(join_key_type(Bytes, None), Bytes);
    }
}
