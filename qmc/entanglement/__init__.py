"""Entangled-photon pair sources and entanglement-based QKD (BBM92, CHSH) on a two-arm link.

* :mod:`~qmc.entanglement.spdc`: :class:`PairSource` (SPDC pair statistics, position on the link);
* :mod:`~qmc.entanglement.two_arm`: the joint outcome table of Alice's and Bob's receivers in
  closed form, :class:`TwoArmLink`;
* :mod:`~qmc.entanglement.window`: the coincidence window (jitter capture, accidentals per window);
* :mod:`~qmc.entanglement.pair_sum`: the same table by summing over pair numbers (tests);
* :mod:`~qmc.entanglement.bbm92`: gain, QBER, Ma-Fung-Lo's closed forms, key rate, optimum;
* :mod:`~qmc.entanglement.chsh`: the CHSH S value from counts and from the model.

See docs/entanglement.md.
"""

from qmc.entanglement.window import window_capture, window_dark_probability
from qmc.entanglement.spdc import POSITIONS, STATISTICS, PairSource, pair_number_pmf, split_length
from qmc.entanglement.two_arm import (
    BASIS_ANGLES, CLICK_MODELS, TwoArmLink, angle_table, outcome_table, presence_table,
)
from qmc.entanglement.bbm92 import (
    bbm92_key_rate, gain_and_qber, key_rate_from_table, maximum_distance_km,
    mfl_error_gain, mfl_gain, mfl_k, optimal_key_rate,
)
from qmc.entanglement.chsh import (
    CHSH_ANGLES, CLASSICAL_LIMIT, chsh_from_counts, chsh_probabilities, expected_s, model_s,
    sample_chsh_counts, visibility,
)

__all__ = [
    "PairSource", "STATISTICS", "POSITIONS", "pair_number_pmf", "split_length",
    "window_capture", "window_dark_probability",
    "TwoArmLink", "CLICK_MODELS", "BASIS_ANGLES", "angle_table", "outcome_table", "presence_table",
    "gain_and_qber", "mfl_gain", "mfl_error_gain", "mfl_k", "key_rate_from_table",
    "bbm92_key_rate", "optimal_key_rate", "maximum_distance_km",
    "CHSH_ANGLES", "CLASSICAL_LIMIT", "chsh_from_counts", "chsh_probabilities", "expected_s",
    "model_s", "sample_chsh_counts", "visibility",
]
