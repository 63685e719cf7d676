"""Archival discs (issue 8): BagIt bags burned to ISO 9660 discs a clerk can check.

Disc layout (the contract; the root of the ISO image is the bag):

    bagit.txt               BagIt-Version: 1.0 / Tag-File-Character-Encoding: UTF-8
    bag-info.txt            Source-Organization (log origin), Bagging-Date,
                            External-Identifier (disc label), Bag-Count ("2 of 5"),
                            Bag-Group-Identifier (export id), Payload-Oxum,
                            Internal-Sender-Description, dockd-Copy ("1 of 2")
    manifest-sha256.txt     every data/ file
    tagmanifest-sha256.txt  every other file (not itself)
    data/<unit>/<officer>/<YYYY-MM-DD>/<recording id>_<original file name>
    dockd/catalog.json      one object per recording (every label field, and bag_path)
    dockd/catalog.csv       the same, CSV with a header (UTF-8 with BOM)
    dockd/entries.jsonl     the log entries of these recordings (canonical JSON lines)
    dockd/proofs.json       {"tree_size": N, "proofs": {"<seq>": [base64, ...]}}
    dockd/checkpoint.txt    the signed checkpoint (C2SP signed note)
    dockd/keys.txt          verifier keys, one per line
    verify.py               standalone checker (dockd/integrity/standalone_verify.py)
    README.txt              Chinese and English instructions (UTF-8 with BOM)

Modules: bag (names, staging, bagit validation), iso (xorriso), readme
(README.txt), check (`verify_disc`). The standalone verify.py is
dockd/integrity/standalone_verify.py: log exports carry it too.
"""

from dockd.archive.bag import ArchiveError

__all__ = ["ArchiveError"]
