"""Attacks: the ``attack`` options. A seeded fraction of the federation is malicious for the whole run.

Client-side attacks travel in the malicious clients' training messages and run in the
client (``fedsim.attacks.client``): model poisoning (sign flip, Gaussian noise, scaling)
and data poisoning (label flip, backdoor). Server-side attacks (ALIE, IPM) are an
omniscient adversary that crafts the malicious replies from the benign ones
(``fedsim.attacks.omniscient``). ``fedsim.attacks.adversaries`` draws the malicious
clients and wraps the strategy.
"""

from fedsim.attacks.base import Attack, NoAttack
from fedsim.attacks.omniscient import ALIE, IPM
from fedsim.attacks.poisoning import Backdoor, LabelFlip
from fedsim.attacks.updates import Gaussian, Scaling, SignFlip

__all__ = ["ALIE", "IPM", "Attack", "Backdoor", "Gaussian", "LabelFlip", "NoAttack", "Scaling", "SignFlip"]
