using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NearML.Core;

namespace NearML.Ledger;

/// <summary>A point in a settlement at which durable state changes (used for progress reporting and crash tests).</summary>
public enum SettlementStep
{
    /// <summary>The intent (payouts + root) was stored.</summary>
    IntentStored,

    /// <summary>A signed transaction was stored (before it is sent).</summary>
    TransactionStored,

    /// <summary>The stored bytes are about to be sent.</summary>
    Sending,

    /// <summary>The node answered with a final outcome (not yet recorded).</summary>
    OutcomeReceived,

    /// <summary>The final outcome was recorded.</summary>
    TransactionFinal,

    /// <summary>Every transaction is final and the intent is marked settled.</summary>
    Settled,

    /// <summary>An attempt was marked <see cref="SettlementTxState.Replaced"/> or <see cref="SettlementTxState.Superseded"/>; its successor is not signed yet.</summary>
    AttemptRetired,
}

/// <summary>Options of <see cref="NearSettler"/>.</summary>
public sealed class SettlementOptions
{
    /// <summary>Gets or sets the NEP-141 token contract; <see langword="null"/> pays native NEAR with Transfer actions.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? TokenContract { get; set; }

    /// <summary>Gets or sets the contract that anchors epoch roots; <see langword="null"/> skips anchoring.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public string? AnchorContract { get; set; }

    /// <summary>Gets or sets the anchoring method, called with <c>{"epoch","root","payouts","total"}</c>.</summary>
    /// <value>The default value is <c>anchor_root</c>.</value>
    public string AnchorMethod { get; set; } = "anchor_root";

    /// <summary>Gets or sets how many ft_transfer actions share one transaction (native transfers are one per transaction, since a transaction has one receiver).</summary>
    /// <value>The default value is 10.</value>
    public int MaxTransfersPerTransaction { get; set; } = 10;

    /// <summary>Gets or sets the gas per function call.</summary>
    /// <value>The default value is 30 Tgas.</value>
    public ulong GasPerCall { get; set; } = 30_000_000_000_000;

    /// <summary>Gets or sets a value indicating whether to sign and store but send nothing.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool DryRun { get; set; }

    /// <summary>Gets or sets how many times a dead transaction (nonce used, or expired and unknown) may be re-signed per slot.</summary>
    /// <value>The default value is 5.</value>
    public int MaxAttemptsPerSlot { get; set; } = 5;

    /// <summary>Gets or sets a callback invoked at each durable step (progress reporting; crash tests).</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public Action<SettlementStep, int>? OnStep { get; set; }
}

/// <summary>The settlement could not finish; its state is stored and a later run resumes it with the same bytes.</summary>
public sealed class SettlementException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What failed.</param>
    /// <param name="isTransient">Whether a later run may succeed without operator action.</param>
    /// <param name="innerException">The cause.</param>
    public SettlementException(string message, bool isTransient, Exception? innerException = null) : base(message, innerException) => Transient = isTransient;

    private bool Transient { get; }

    /// <inheritdoc/>
    public override bool IsTransient => Transient;
}

/// <summary>The result of a settlement run.</summary>
/// <param name="Epoch">The epoch.</param>
/// <param name="Root">The ledger root.</param>
/// <param name="Transactions">Per slot, the attempt that landed, or else the latest attempt.</param>
/// <param name="Settled">Whether every transaction is final.</param>
/// <param name="DryRun">Whether nothing was sent.</param>
/// <param name="Summary">A human-readable summary (hashes, amounts, states).</param>
public sealed record SettlementResult(long Epoch, byte[] Root, IReadOnlyList<SettlementTransaction> Transactions, bool Settled, bool DryRun, string Summary);

/// <summary>
/// Settles an epoch's payouts on NEAR exactly once: persist the intent, sign each transaction and store it before
/// sending, re-send the same bytes on retry or restart, and mark each final. A transaction the chain knows at any
/// level is waited for, never replaced. An expired, unknown one is replaced by a transaction with the same nonce (so at
/// most one of them can execute); a new nonce is used only when a final block proves the old nonce consumed by a
/// transaction that is none of the slot's attempts.
/// </summary>
public sealed partial class NearSettler
{
    private readonly NearRpcClient _client;
    private readonly ISettlementStore _store;
    private readonly NearCredentials _signer;
    private readonly SettlementOptions _options;
    private readonly NearNonceManager _nonces;
    private readonly ILogger _logger;

    /// <summary>Initializes a new settler.</summary>
    /// <param name="client">The RPC client.</param>
    /// <param name="store">The settlement store.</param>
    /// <param name="signer">The paying account and key.</param>
    /// <param name="options">The options.</param>
    /// <param name="logger">A logger, or <see langword="null"/>.</param>
    public NearSettler(NearRpcClient client, ISettlementStore store, NearCredentials signer, SettlementOptions options, ILogger<NearSettler>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(signer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxTransfersPerTransaction, nameof(options));
        if (options.TokenContract is not null)
        {
            NearAccountId.Validate(options.TokenContract, nameof(options.TokenContract));
        }

        if (options.AnchorContract is not null)
        {
            NearAccountId.Validate(options.AnchorContract, nameof(options.AnchorContract));
        }

        _client = client;
        _store = store;
        _signer = signer;
        _options = options;
        _nonces = new NearNonceManager(client);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>Settles (or resumes settling) an epoch.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <param name="root">The epoch's ledger root (32 bytes).</param>
    /// <param name="payouts">The payouts (from <see cref="RewardPolicy.Distribute"/>).</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The result.</returns>
    /// <exception cref="SettlementException">The settlement cannot finish now (state is kept; run again), or the intent conflicts with a stored one.</exception>
    public async Task<SettlementResult> SettleAsync(long epoch, byte[] root, IReadOnlyList<WorkerPayout> payouts, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(payouts);
        if (root.Length != 32)
        {
            throw new ArgumentException($"root must be 32 bytes, got {root.Length}.", nameof(root));
        }

        foreach (WorkerPayout p in payouts)
        {
            NearAccountId.Validate(p.WorkerId, nameof(payouts));
        }

        SettlementIntent intent = EnsureIntent(epoch, root, payouts);
        List<NearAction[]> plan = Plan(intent, out string[] receivers);
        for (int slot = 0; slot < plan.Count; slot++)
        {
            await SettleSlotAsync(intent, slot, receivers[slot], plan[slot], cancellationToken).ConfigureAwait(false);
        }

        bool settled = !intent.DryRun;
        if (settled)
        {
            _store.MarkSettled(epoch);
            _options.OnStep?.Invoke(SettlementStep.Settled, -1);
        }

        return BuildResult(intent, settled);
    }

    private SettlementIntent EnsureIntent(long epoch, byte[] root, IReadOnlyList<WorkerPayout> payouts)
    {
        SettlementIntent? existing = _store.GetIntent(epoch);
        if (existing is null)
        {
            var intent = new SettlementIntent(epoch, root, payouts.Where(p => p.Amount > 0).ToList(), _options.DryRun, false);
            _store.CreateIntent(intent);
            _options.OnStep?.Invoke(SettlementStep.IntentStored, -1);
            return intent;
        }

        if (!existing.Root.AsSpan().SequenceEqual(root)
            || !SettlementStore.EncodePayouts(existing.Payouts).AsSpan().SequenceEqual(SettlementStore.EncodePayouts(payouts.Where(p => p.Amount > 0).ToList())))
        {
            throw new SettlementException($"epoch {epoch} already has a stored settlement intent with a different root or payout list; it is never replaced.", false);
        }

        if (existing.DryRun != _options.DryRun)
        {
            throw new SettlementException(existing.DryRun
                ? $"epoch {epoch}'s intent in {_store.Location} was created by a dry run; settle for real with a fresh store."
                : $"epoch {epoch} has a real settlement in {_store.Location}; a dry run must use a separate store.", false);
        }

        return existing;
    }

    private List<NearAction[]> Plan(SettlementIntent intent, out string[] receivers)
    {
        var plan = new List<NearAction[]>();
        var to = new List<string>();
        string rootHex = Convert.ToHexStringLower(intent.Root);
        UInt128 total = 0;
        foreach (WorkerPayout p in intent.Payouts)
        {
            total = checked(total + p.Amount);
        }

        if (_options.AnchorContract is { } anchor)
        {
            byte[] args = Json(w =>
            {
                w.WriteNumber("epoch", intent.Epoch);
                w.WriteString("root", rootHex);
                w.WriteNumber("payouts", intent.Payouts.Count);
                w.WriteString("total", total.ToString(CultureInfo.InvariantCulture));
            });
            plan.Add([new FunctionCallAction(_options.AnchorMethod, args, _options.GasPerCall, 0)]);
            to.Add(anchor);
        }

        if (_options.TokenContract is { } token)
        {
            string memo = $"nearml epoch {intent.Epoch} root {rootHex}";
            foreach (WorkerPayout[] chunk in intent.Payouts.Chunk(_options.MaxTransfersPerTransaction))
            {
                plan.Add(chunk.Select(p => (NearAction)new FunctionCallAction("ft_transfer", Json(w =>
                {
                    w.WriteString("receiver_id", p.WorkerId);
                    w.WriteString("amount", p.Amount.ToString(CultureInfo.InvariantCulture));
                    w.WriteString("memo", memo);
                }), _options.GasPerCall, 1)).ToArray());
                to.Add(token);
            }
        }
        else
        {
            foreach (WorkerPayout p in intent.Payouts)
            {
                plan.Add([new TransferAction(p.Amount)]);
                to.Add(p.WorkerId);
            }
        }

        receivers = to.ToArray();
        return plan;
    }

    private async Task SettleSlotAsync(SettlementIntent intent, int slot, string receiver, NearAction[] actions, CancellationToken ct)
    {
        int replacedInThisRun = 0;
        while (true)
        {
            List<SettlementTransaction> attempts = _store.GetTransactions(intent.Epoch).Where(t => t.Slot == slot).OrderBy(t => t.Attempt).ToList();
            if (attempts.Any(t => t.State is SettlementTxState.Succeeded or SettlementTxState.Failed))
            {
                return;
            }

            SettlementTransaction? current = attempts.Count == 0 ? null : attempts[^1];
            if (current is { State: SettlementTxState.Replaced } && replacedInThisRun >= 2)
            {
                // The fresh block hash expired again before the node took the transaction (finality may be stalled): signing
                // more attempts now would only pile up replacements. The same nonce is reused on the next run.
                throw new SettlementException($"epoch {intent.Epoch} slot {slot}: {replacedInThisRun} attempts in a row expired before the node accepted them (is finality stalled?); run again later.", true);
            }

            if (current is null || current.State is SettlementTxState.Superseded or SettlementTxState.Replaced)
            {
                int attempt = current is null ? 0 : current.Attempt + 1;
                if (attempt >= _options.MaxAttemptsPerSlot)
                {
                    // A replaced attempt may still have landed: look before giving up.
                    List<SettlementTransaction> stillLive = attempts.Where(t => t.State is SettlementTxState.Signed or SettlementTxState.Replaced).ToList();
                    if (current is not null && await ResolveKnownAsync(current, stillLive, ct).ConfigureAwait(false))
                    {
                        return;
                    }

                    throw new SettlementException($"epoch {intent.Epoch} slot {slot}: {attempt} attempts could not land; see the stored outcomes.", false);
                }

                // A replaced attempt may still land, so its successor shares its nonce: at most one of them can execute.
                ulong? nonce = current is { State: SettlementTxState.Replaced } ? current.Nonce : null;
                current = await SignAndStoreAsync(intent.Epoch, slot, attempt, receiver, actions, nonce, ct).ConfigureAwait(false);
                attempts.Add(current);
            }

            if (intent.DryRun)
            {
                return;
            }

            // Every attempt that is not proven dead; they all share the current attempt's nonce.
            List<SettlementTransaction> live = attempts.Where(t => t.State is SettlementTxState.Signed or SettlementTxState.Replaced).ToList();
            switch (await SendAsync(current, live, ct).ConfigureAwait(false))
            {
                case SendResult.Final:
                    return;
                case SendResult.Replaced:
                    replacedInThisRun++;
                    break;
            }
        }
    }

    private async Task<SettlementTransaction> SignAndStoreAsync(long epoch, int slot, int attempt, string receiver, NearAction[] actions, ulong? reuseNonce, CancellationToken ct)
    {
        ulong nonce;
        BlockView block;
        try
        {
            nonce = reuseNonce ?? await _nonces.NextAsync(_signer.AccountId, _signer.Key.PublicKey, ct).ConfigureAwait(false);
            block = await _client.GetFinalBlockAsync(ct).ConfigureAwait(false);
        }
        catch (NearRpcException ex)
        {
            if (reuseNonce is null)
            {
                _nonces.Invalidate(_signer.AccountId, _signer.Key.PublicKey);
            }

            throw new SettlementException($"epoch {epoch} slot {slot}: attempt {attempt} could not be signed: {ex.Message}. Nothing was sent; run again.", ex.IsTransient, ex);
        }
        var tx = new NearTransaction(_signer.AccountId, _signer.Key.PublicKey, nonce, receiver, block.HashBytes, actions);
        SignedNearTransaction signed = tx.Sign(_signer.Key);
        var stored = new SettlementTransaction(epoch, slot, attempt, nonce, signed.HashBase58, signed.ToBorsh(), SettlementTxState.Signed, null);
        _store.AddTransaction(stored);
        LogStored(_logger, epoch, slot, attempt, stored.Hash, nonce);
        _options.OnStep?.Invoke(SettlementStep.TransactionStored, slot);
        return stored;
    }

    /// <summary>
    /// Sends the stored bytes; returns whether the slot is final or the attempt was retired (replaced or superseded) and a
    /// successor must be signed. Every uncertain answer ends in a transient <see cref="SettlementException"/>
    /// with the bytes kept; an attempt the chain knows at any level is waited for and never retired.
    /// </summary>
    private async Task<SendResult> SendAsync(SettlementTransaction tx, List<SettlementTransaction> live, CancellationToken ct)
    {
        _options.OnStep?.Invoke(SettlementStep.Sending, tx.Slot);
        NearTransactionOutcome outcome;
        try
        {
            outcome = await _client.SendSignedBytesAsync(tx.SignedBytes, TxExecutionStatus.Final, ct).ConfigureAwait(false);
        }
        catch (NearInvalidNonceException ex)
        {
            // Either one of this slot's attempts consumed the nonce (wait for it), or another transaction did. Only a
            // final access-key nonce at or above ours, with none of our attempts on chain, proves that none can land.
            if (await ResolveKnownAsync(tx, live, ct).ConfigureAwait(false))
            {
                return SendResult.Final;
            }

            AccessKeyView key = await ReadFinalAccessKeyAsync(tx, ct).ConfigureAwait(false);
            if (key.Nonce < tx.Nonce)
            {
                throw new SettlementException($"epoch {tx.Epoch} slot {tx.Slot}: the node says nonce {tx.Nonce} is used (access key nonce {ex.AccessKeyNonce}), but the final access key nonce is {key.Nonce}: the consuming transaction is not final yet. Nothing is re-signed; run again.", true, ex);
            }

            if (await ResolveKnownAsync(tx, live, ct).ConfigureAwait(false))
            {
                return SendResult.Final;
            }

            await _nonces.ResyncAsync(_signer.AccountId, _signer.Key.PublicKey, key.Nonce, ct).ConfigureAwait(false);
            string reason = $"nonce {tx.Nonce} is consumed in final block {key.BlockHeight} (access key nonce {key.Nonce}) and the chain knows none of {string.Join(", ", live.Select(t => t.Hash))}";
            foreach (SettlementTransaction t in live)
            {
                Retire(t, SettlementTxState.Superseded, reason);
            }

            _options.OnStep?.Invoke(SettlementStep.AttemptRetired, tx.Slot);
            return SendResult.Superseded;
        }
        catch (NearTransactionExpiredException)
        {
            if (await ResolveKnownAsync(tx, live, ct).ConfigureAwait(false))
            {
                return SendResult.Final;
            }

            // Unknown is not dead (it may wait in a pool), so the successor reuses the nonce instead of proving anything.
            Retire(tx, SettlementTxState.Replaced, $"its block hash expired and the chain does not know {tx.Hash}; the successor reuses nonce {tx.Nonce}");
            _options.OnStep?.Invoke(SettlementStep.AttemptRetired, tx.Slot);
            return SendResult.Replaced;
        }
        catch (NearInvalidTransactionException ex)
        {
            if (await ResolveKnownAsync(tx, live, ct).ConfigureAwait(false))
            {
                return SendResult.Final;
            }

            throw new SettlementException($"epoch {tx.Epoch} slot {tx.Slot}: the node refused {tx.Hash}: {ex.Kind}. Fix the cause (for example fund {_signer.AccountId}) and run again; the same bytes will be re-sent.", false, ex);
        }
        catch (NearRpcException ex)
        {
            // The outcome is unknown (or the node refused to answer): the transaction may still land. Keep the bytes.
            if (await ResolveKnownAsync(tx, live, ct).ConfigureAwait(false))
            {
                return SendResult.Final;
            }

            throw new SettlementException($"epoch {tx.Epoch} slot {tx.Slot}: outcome of {tx.Hash} unknown ({ex.ErrorName}{(ex.CauseName is null ? "" : "/" + ex.CauseName)}); run again to re-send the same bytes.", ex.IsTransient, ex);
        }

        _options.OnStep?.Invoke(SettlementStep.OutcomeReceived, tx.Slot);
        if (!outcome.IsFinal)
        {
            throw new SettlementException($"epoch {tx.Epoch} slot {tx.Slot}: {tx.Hash} is known at {NearRpcClient.FormatStatus(outcome.FinalExecutionStatus)} but not final yet; it is waited for, never re-signed. Run again.", true);
        }

        Record(tx, outcome, live);
        return SendResult.Final;
    }

    private async Task<AccessKeyView> ReadFinalAccessKeyAsync(SettlementTransaction tx, CancellationToken ct)
    {
        try
        {
            return await _client.ViewAccessKeyAsync(_signer.AccountId, _signer.Key.PublicKey, ct).ConfigureAwait(false);
        }
        catch (NearRpcException ex)
        {
            throw new SettlementException($"epoch {tx.Epoch} slot {tx.Slot}: the final nonce of {_signer.AccountId}'s key could not be read ({ex.ErrorName}); nothing is re-signed while {tx.Hash} may land. Run again.", true, ex);
        }
    }

    /// <summary>
    /// Asks the chain about every live attempt of the slot. Returns true after recording a final one; returns false only when
    /// the node answered <c>UNKNOWN_TRANSACTION</c> for all of them. An attempt known at any lower level is waited for (the
    /// node waits up to its timeout); if it is still not final, a transient <see cref="SettlementException"/> is thrown.
    /// </summary>
    private async Task<bool> ResolveKnownAsync(SettlementTransaction sent, List<SettlementTransaction> live, CancellationToken ct)
    {
        foreach (SettlementTransaction t in live)
        {
            NearTransactionOutcome status;
            try
            {
                status = await _client.GetTransactionStatusAsync(t.Hash, _signer.AccountId, TxExecutionStatus.None, ct).ConfigureAwait(false);
            }
            catch (NearUnknownTransactionException)
            {
                continue;
            }
            catch (NearRpcException ex)
            {
                throw new SettlementException($"epoch {sent.Epoch} slot {sent.Slot}: the status of {t.Hash} could not be read ({ex.ErrorName}{(ex.CauseName is null ? "" : "/" + ex.CauseName)}); nothing is re-signed while it is uncertain. Run again.", true, ex);
            }

            if (!status.IsFinal)
            {
                LogWaiting(_logger, t.Epoch, t.Slot, t.Hash, status.FinalExecutionStatus);
                try
                {
                    status = await _client.GetTransactionStatusAsync(t.Hash, _signer.AccountId, TxExecutionStatus.Final, ct).ConfigureAwait(false);
                }
                catch (NearRpcException ex)
                {
                    throw new SettlementException($"epoch {sent.Epoch} slot {sent.Slot}: {t.Hash} is known at {NearRpcClient.FormatStatus(status.FinalExecutionStatus)} but not final yet ({ex.ErrorName}); it is waited for, never re-signed. Run again.", true, ex);
                }

                if (!status.IsFinal)
                {
                    throw new SettlementException($"epoch {sent.Epoch} slot {sent.Slot}: {t.Hash} is known at {NearRpcClient.FormatStatus(status.FinalExecutionStatus)} but not final yet; it is waited for, never re-signed. Run again.", true);
                }
            }

            _options.OnStep?.Invoke(SettlementStep.OutcomeReceived, t.Slot);
            return Record(t, status, live);
        }

        return false;
    }

    private enum SendResult
    {
        Final,
        Replaced,
        Superseded,
    }

    private bool Record(SettlementTransaction tx, NearTransactionOutcome outcome, List<SettlementTransaction> live)
    {
        SettlementTxState state = outcome.IsSuccess ? SettlementTxState.Succeeded : SettlementTxState.Failed;
        _store.SetState(tx.Epoch, tx.Slot, tx.Attempt, state, outcome.RawJson);
        LogFinal(_logger, tx.Epoch, tx.Slot, tx.Hash, state);
        foreach (SettlementTransaction other in live.Where(o => o.Attempt != tx.Attempt))
        {
            // Same nonce as the attempt that landed: these can never execute.
            Retire(other, SettlementTxState.Superseded, $"attempt {tx.Attempt} ({tx.Hash}) with the same nonce landed");
        }

        _options.OnStep?.Invoke(SettlementStep.TransactionFinal, tx.Slot);
        return true;
    }

    private void Retire(SettlementTransaction tx, SettlementTxState state, string reason)
    {
        _store.SetState(tx.Epoch, tx.Slot, tx.Attempt, state, JsonSerializerString(reason));
        LogRetired(_logger, tx.Epoch, tx.Slot, tx.Hash, state, reason);
    }

    private SettlementResult BuildResult(SettlementIntent intent, bool settled)
    {
        IReadOnlyList<SettlementTransaction> all = _store.GetTransactions(intent.Epoch);
        List<SettlementTransaction> latest = all.GroupBy(t => t.Slot)
            .Select(g => g.FirstOrDefault(t => t.State is SettlementTxState.Succeeded or SettlementTxState.Failed) ?? g.MaxBy(t => t.Attempt)!)
            .OrderBy(t => t.Slot).ToList();
        var sb = new StringBuilder();
        UInt128 total = 0;
        foreach (WorkerPayout p in intent.Payouts)
        {
            total += p.Amount;
        }

        sb.Append(CultureInfo.InvariantCulture, $"{(intent.DryRun ? "DRY RUN - nothing sent. " : "")}Epoch {intent.Epoch}, root {Convert.ToHexStringLower(intent.Root)}, ");
        sb.Append(CultureInfo.InvariantCulture, $"{intent.Payouts.Count} payouts totalling {total} {(_options.TokenContract is null ? "yoctoNEAR" : "units of " + _options.TokenContract)}, {latest.Count} transactions from {_signer.AccountId}:");
        sb.AppendLine();
        foreach (SettlementTransaction t in latest)
        {
            NearTransaction parsed = SignedNearTransaction.Parse(t.SignedBytes).Transaction;
            sb.Append(CultureInfo.InvariantCulture, $"  [{t.Slot}] {t.Hash} nonce {t.Nonce} -> {parsed.ReceiverId}: {Describe(parsed.Actions)} [{t.State}]");
            sb.AppendLine();
        }

        foreach (WorkerPayout p in intent.Payouts)
        {
            sb.Append(CultureInfo.InvariantCulture, $"  pay {p.WorkerId}: {p.Amount} (work {p.Work})");
            sb.AppendLine();
        }

        return new SettlementResult(intent.Epoch, intent.Root, latest, settled, intent.DryRun, sb.ToString());
    }

    private static string Describe(IReadOnlyList<NearAction> actions) =>
        string.Join(", ", actions.Select(a => a switch
        {
            TransferAction t => $"Transfer {t.Deposit}",
            FunctionCallAction f => $"{f.MethodName}({Encoding.UTF8.GetString(f.Args)})",
            _ => a.GetType().Name,
        }));

    private static byte[] Json(Action<Utf8JsonWriter> body)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static string JsonSerializerString(string reason)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("superseded", reason);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    [LoggerMessage(EventId = 6200, EventName = "SettlementTxStored", Level = LogLevel.Information, Message = "Settlement epoch {Epoch} slot {Slot} attempt {Attempt}: stored {Hash} with nonce {Nonce}")]
    private static partial void LogStored(ILogger logger, long epoch, int slot, int attempt, string hash, ulong nonce);

    [LoggerMessage(EventId = 6201, EventName = "SettlementTxFinal", Level = LogLevel.Information, Message = "Settlement epoch {Epoch} slot {Slot}: {Hash} is final: {State}")]
    private static partial void LogFinal(ILogger logger, long epoch, int slot, string hash, SettlementTxState state);

    [LoggerMessage(EventId = 6202, EventName = "SettlementTxRetired", Level = LogLevel.Warning, Message = "Settlement epoch {Epoch} slot {Slot}: {Hash} is {State} ({Reason})")]
    private static partial void LogRetired(ILogger logger, long epoch, int slot, string hash, SettlementTxState state, string reason);

    [LoggerMessage(EventId = 6203, EventName = "SettlementTxWaiting", Level = LogLevel.Information, Message = "Settlement epoch {Epoch} slot {Slot}: {Hash} is known at {Level}; waiting for it to be final (never re-signed)")]
    private static partial void LogWaiting(ILogger logger, long epoch, int slot, string hash, TxExecutionStatus level);
}
