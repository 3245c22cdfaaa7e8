use larder_registry::store::RegistrySnapshot;
type Tags = [(String, String)];
pub fn entities(_: &RegistrySnapshot, _: &str, _: &Tags) -> anyhow::Result<()> { Ok(()) }
pub fn feature_views(_: &RegistrySnapshot, _: &str, _: &Tags) -> anyhow::Result<()> { Ok(()) }
pub fn odfvs(_: &RegistrySnapshot, _: &str, _: &Tags) -> anyhow::Result<()> { Ok(()) }
pub fn services(_: &RegistrySnapshot, _: &str, _: &Tags) -> anyhow::Result<()> { Ok(()) }
pub fn data_sources(_: &RegistrySnapshot, _: &str, _: &Tags) -> anyhow::Result<()> { Ok(()) }
pub fn projects(_: &RegistrySnapshot, _: &Tags) -> anyhow::Result<()> { Ok(()) }
