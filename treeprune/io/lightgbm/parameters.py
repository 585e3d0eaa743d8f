"""The parameters block of a written LightGBM model: only names today's LightGBM knows.

A LightGBM text model ends with the parameters it was trained with, as ``[name: value]`` lines.
The writer copies the source file's block back (it documents how the model was trained, and
``lightgbm.Booster.params`` reads it), but LightGBM 4 warns "Ignoring unrecognized parameter" for
every name that older releases wrote and it no longer has (``max_conflict_rate``,
``sparse_threshold``, ``max_position``, ...). Such parameters had no effect on the model's scores
and LightGBM drops them anyway, so the writer leaves them out.
"""

from __future__ import annotations

__all__ = ["LIGHTGBM_PARAMETERS", "current_parameters"]

#: The main parameter names of LightGBM 4 (``Config::parameter_set``; aliases are not accepted in
#: a model file's parameters block).
LIGHTGBM_PARAMETERS = frozenset({
    "alpha", "auc_mu_weights", "bagging_by_query", "bagging_fraction", "bagging_freq",
    "bagging_seed", "bin_construct_sample_cnt", "boost_from_average", "boosting", "cat_l2",
    "cat_smooth", "categorical_feature", "cegb_penalty_feature_coupled",
    "cegb_penalty_feature_lazy", "cegb_penalty_split", "cegb_tradeoff", "config",
    "convert_model", "convert_model_language", "data", "data_random_seed",
    "data_sample_strategy", "deterministic", "device_type", "drop_rate", "drop_seed",
    "early_stopping_min_delta", "early_stopping_round", "enable_bundle", "eval_at",
    "extra_seed", "extra_trees", "fair_c", "feature_contri", "feature_fraction",
    "feature_fraction_bynode", "feature_fraction_seed", "feature_pre_filter",
    "first_metric_only", "force_col_wise", "force_row_wise", "forcedbins_filename",
    "forcedsplits_filename", "gpu_device_id", "gpu_device_id_list", "gpu_platform_id",
    "gpu_use_dp", "group_column", "header", "histogram_pool_size", "ignore_column",
    "input_model", "interaction_constraints", "is_enable_sparse", "is_provide_training_metric",
    "is_unbalance", "label_column", "label_gain", "lambda_l1", "lambda_l2", "lambdarank_norm",
    "lambdarank_position_bias_regularization", "lambdarank_truncation_level", "learning_rate",
    "linear_lambda", "linear_tree", "local_listen_port", "machine_list_filename", "machines",
    "max_bin", "max_bin_by_feature", "max_cat_threshold", "max_cat_to_onehot",
    "max_delta_step", "max_depth", "max_drop", "metric", "metric_freq", "min_data_in_bin",
    "min_data_in_leaf", "min_data_per_group", "min_gain_to_split", "min_sum_hessian_in_leaf",
    "monotone_constraints", "monotone_constraints_method", "monotone_penalty",
    "multi_error_top_k", "neg_bagging_fraction", "num_class", "num_gpu", "num_grad_quant_bins",
    "num_iteration_predict", "num_iterations", "num_leaves", "num_machines", "num_threads",
    "objective", "objective_seed", "other_rate", "output_model", "output_result",
    "parser_config_file", "path_smooth", "poisson_max_delta_step", "pos_bagging_fraction",
    "pre_partition", "precise_float_parser", "pred_early_stop", "pred_early_stop_freq",
    "pred_early_stop_margin", "predict_contrib", "predict_disable_shape_check",
    "predict_leaf_index", "predict_raw_score", "quant_train_renew_leaf", "refit_decay_rate",
    "reg_sqrt", "save_binary", "saved_feature_importance_type", "scale_pos_weight", "seed",
    "sigmoid", "skip_drop", "snapshot_freq", "start_iteration_predict", "stochastic_rounding",
    "task", "time_out", "top_k", "top_rate", "tree_learner", "tweedie_variance_power",
    "two_round", "uniform_drop", "use_missing", "use_quantized_grad", "valid", "verbosity",
    "weight_column", "xgboost_dart_mode", "zero_as_missing"
})


def current_parameters(block: str) -> str:
    """The ``[name: value]`` lines of ``block`` whose name LightGBM 4 knows, in their order.

    Parameters
    ----------
    block : str
        The text between ``parameters:`` and ``end of parameters`` of a LightGBM model.

    Returns
    -------
    str
        The same lines without the ones for parameters that LightGBM no longer has.
    """
    kept = []
    for line in block.splitlines():
        text = line.strip()
        if not text:
            continue
        name = text[1:].partition(":")[0].strip() if text.startswith("[") else ""
        if name in LIGHTGBM_PARAMETERS:
            kept.append(text)
    return "\n".join(kept)
