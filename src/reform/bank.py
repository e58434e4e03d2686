"""A memory bank of song vectors: the other songs a one-song clustering batch is compared with.

The clustering phase sees one song per batch (the design note's batches), so a
batch alone has no other song to keep its windows apart from.  The bank holds one
unit vector per training song, the running direction of its windows' embeddings,
refreshed from each song's batch after every step; the bank loss
(:func:`reform.losses.bank_loss`) pulls a batch towards its own song's vector and
away from the others, and may count the song's nearest neighbours in the bank (all, or
only the mutual ones) as partial positives, so that songs which already sound alike are
not pushed apart.
"""

from __future__ import annotations

import torch


class MemoryBank:
    """One unit vector per song.  ``vectors`` : (N, D)."""

    def __init__(self, vectors: torch.Tensor):
        if vectors.ndim != 2 or len(vectors) < 2:
            raise ValueError("a memory bank needs a (songs, dim) matrix of at least 2 songs")
        self.vectors = torch.nn.functional.normalize(vectors.detach().float(), dim=1)

    def __len__(self) -> int:
        return len(self.vectors)

    def update(self, song: int, embedding: torch.Tensor, momentum: float) -> None:
        """Move a song's vector towards the mean direction of its windows' embeddings (B, D)."""
        self.move(song, self.fresh(embedding), momentum)

    @staticmethod
    def fresh(embedding: torch.Tensor) -> torch.Tensor:
        """The mean direction of a batch's window embeddings: (B, D) -> (D,).  This is what
        training processes exchange to keep their banks the same."""
        return torch.nn.functional.normalize(embedding.detach().float(), dim=1).mean(0)

    def move(self, song: int, fresh: torch.Tensor, momentum: float) -> None:
        """Mix ``fresh`` (D,) into a song's vector with weight ``1 - momentum``, then unit length."""
        mixed = momentum * self.vectors[song] + (1.0 - momentum) * fresh.to(self.vectors.device)
        self.vectors[song] = torch.nn.functional.normalize(mixed, dim=0)

    def neighbours(self, song: int, k: int, mutual: bool = False) -> torch.Tensor:
        """Indices of the ``k`` songs whose vectors are closest (cosine) to this song's; with
        ``mutual``, only those that have this song among their own ``k`` closest (fewer
        positives, each chosen from both sides: the links that graph diffusion keeps, reform.space)."""
        k = min(k, len(self) - 1)
        sim = self.vectors @ self.vectors[song]
        sim[song] = float("-inf")
        nearest = torch.topk(sim, k).indices
        if not mutual:
            return nearest
        theirs = self.vectors[nearest] @ self.vectors.T                          # (k, N)
        theirs[torch.arange(k, device=theirs.device), nearest] = float("-inf")
        # this song is among a neighbour's k closest when fewer than k songs are closer to it
        closer = (theirs > theirs[:, song:song + 1]).sum(1)
        return nearest[closer < k]

    def targets(self, song: int, neighbours: int = 0, soft: float = 0.0, mutual: bool = False) -> torch.Tensor:
        """The target distribution over the bank for a batch of ``song``: (N,).

        All the weight on the song itself, or ``1 - soft`` on it and ``soft`` shared
        equally by its ``neighbours`` nearest songs (with ``mutual``, by those of them that
        count the song among their own nearest; all on the song if none does).
        """
        target = torch.zeros(len(self), device=self.vectors.device)
        near = self.neighbours(song, neighbours, mutual) if neighbours > 0 and soft > 0 else None
        if near is not None and len(near):
            target[near] = soft / len(near)
            target[song] = 1.0 - soft
        else:
            target[song] = 1.0
        return target

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"vectors": self.vectors.clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> MemoryBank:
        """The bank exactly as saved (normalising again could change the last bit, and a
        resumed run must continue from the very same vectors)."""
        bank = cls(state["vectors"])
        bank.vectors = state["vectors"].clone().float()
        return bank
