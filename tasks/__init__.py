"""SeqIO tasks and mixtures of t5x_cot; installed as `t5x_cot.tasks`.

Importing this package registers (once, however often it is imported):
`{gsm8k,strategyqa,coinflip}_{cot,gold_cot,answer_only}`, `gsm8k_cot_frac{12,25,50}`,
`coinflip_ood3`, `coinflip_ood4` and the mixtures `cot_all`, `gold_cot_all`,
`answer_only_all`, and for each `<dataset>_cot` the distilling step-by-step mixture
`<dataset>_dsbs` of `<dataset>_dsbs_label` and `<dataset>_dsbs_rationale` (see `dsbs`).
Splits are `train`, `validation` and `test`; features `inputs`/`targets`.
Offline caches named by `T5X_COT_CACHE_DIR` are added to seqio's cache dirs.
"""
from t5x_cot.tasks import cache, registry

registry.register()
cache.use_cache_dirs(cache.cache_dirs_from_env())
