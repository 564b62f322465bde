"""Old import path, kept only as a re-export: em.py was split into hw5_registration.py (hw5 Q1)
and hw2_bernoulli.py (hw2 Q1).  Kept because tests/test_written_answers.py still does
``import em``; new code imports the two modules.  The command lines are now
``python hw5_registration.py`` and ``python hw2_bernoulli.py``."""

import sys

from common import ConvergenceWarning  # noqa: F401
from hw2_bernoulli import (BernoulliMixtureResult, bernoulli_e_step,  # noqa: F401
                           bernoulli_expected_log_likelihood, bernoulli_log_prob,
                           bernoulli_m_step, bernoulli_mixture_log_likelihood,
                           fit_bernoulli_mixture, load_binary_dataset)
from hw5_registration import (ANNEAL_STEPS, RegistrationResult,  # noqa: F401
                              make_registration_problem, register_translation,
                              registration_complete_log_likelihood, registration_e_step,
                              registration_expected_log_likelihood, registration_log_likelihood,
                              registration_m_step)

if __name__ == "__main__":
    sys.exit("em.py was split: run python hw5_registration.py or python hw2_bernoulli.py")
