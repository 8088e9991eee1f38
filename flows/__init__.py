"""Prefect flows: a campaign runs waves; a wave is plan -> dispatch -> evaluate -> reflect."""
