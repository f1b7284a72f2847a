"""SecureBoost: vertical gradient-boosted trees over Paillier-encrypted gradients (semi-honest parties).

Parties: one *guest* (labels and some features) and one or more *hosts* (other features of the same
rows, already aligned by PSI).  Every party bins its own features by quantiles (:mod:`.binning`);
bin edges never leave their owner.

Protocol (:mod:`.guest`, :mod:`.host`, messages in :mod:`.messages`):

0. *setup*: the guest makes a Paillier key pair and sends hosts the public key, the row count and
   a fingerprint of the configuration (a host refuses a different one).
1. *tree start*: the guest computes ``g, h`` of every output on the tree's rows (row subsample),
   quantizes them to fixed point and packs all ``2K`` values of a row into signed slots of one
   plaintext, wide enough that no sum over all rows overflows (:mod:`.packing`); it encrypts one
   ciphertext per row and sends the same vector to every host, in blocks of bounded size (so
   neither side ever holds more than one block besides the vector, at any row count).
2. *level* (at most ``max_depth`` times): the guest sends the node sample sets of the nodes to
   split and asks for the histograms of one child of each split of the last level, the one with
   fewer rows.  A host builds encrypted histograms of its features with one ``segment_sum`` over
   all features of all those nodes, turns them into cumulative sums, packs several candidates
   per ciphertext, re-randomises and sends them; with the first level it sends a fresh random
   128-bit id per candidate split of the tree (it keeps ``id -> (feature, bin)``).  The guest
   decrypts and unpacks, derives each sibling's sums as ``parent - child`` (the subtraction
   trick, on exact integer sums), and computes XGBoost gains for the hosts' candidates and, in
   plaintext, for its own; a node splits on the best one (:mod:`.split`).
3. *route*: the guest sends each host the ids of the splits it won; the host answers the left/right
   bits of the node's rows and of every row outside the tree (validation and unsampled rows, so
   early stopping needs no extra prediction round).  Leaf weights are computed by the guest only.
4. *finish*: the guest sends each host the ids its final trees use (early stopping may drop trees);
   that is the host's model.  Prediction (:mod:`.predict`): see that module.

What each party learns.  Hosts: the public key, row count and configuration, which rows each
tree uses, the partition of those rows into nodes (standard SecureBoost leakage), which of their
own candidate splits won, and the slot widths (for regression the power of two bounding each
tree's largest standardised residual).  They never see a gradient, hessian, label, score, gain
or leaf weight.  The guest: for every node, the sums of ``g`` and ``h`` of each host candidate
split (for regression, where ``h = 1``, these include row counts); the left/right bits of the
winning host splits for the node's rows and for every validation or unsampled row, and at
prediction for every row; the number of candidates of each host; never a host feature value, name, bin
edge or threshold.  Host ciphertexts are re-randomised before they are sent, so the guest cannot
link them to its own ciphertexts (whose randomness it knows) to find which rows went into a bin.

Security model: semi-honest parties that do not collude.  Malformed messages raise
:class:`~jointly.errors.ProtocolViolation`; a host that sends well-formed but false sums can
bias the model (as in every SecureBoost), not learn more.

Models (:mod:`.model`): the guest keeps the trees with its own splits and ``(host, opaque id)``
references; each host keeps ``{opaque id: (feature, threshold)}``.  :mod:`.reference` is the same
algorithm in plaintext (tests and the guest-only baseline).
"""

from jointly.learn.vertical.secureboost.config import SecureBoostConfig
from jointly.learn.vertical.secureboost.guest import SecureBoostGuest
from jointly.learn.vertical.secureboost.host import SecureBoostHost
from jointly.learn.vertical.secureboost.model import GuestModel, HostModel, HostSplit
from jointly.learn.vertical.secureboost.predict import predict_guest, predict_guest_raw, predict_host
from jointly.learn.vertical.secureboost.reference import ReferenceBooster, fit_reference

__all__ = [
    "GuestModel",
    "HostModel",
    "HostSplit",
    "ReferenceBooster",
    "SecureBoostConfig",
    "SecureBoostGuest",
    "SecureBoostHost",
    "fit_reference",
    "predict_guest",
    "predict_guest_raw",
    "predict_host",
]
