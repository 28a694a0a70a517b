using System.Collections.Concurrent;

namespace NearML.Ledger;

/// <summary>
/// Allocates access-key nonces: reads the key's nonce from the chain before the first use, then hands out
/// increasing values one caller at a time per key, and resynchronises after an <see cref="NearInvalidNonceException"/>.
/// </summary>
public sealed class NearNonceManager
{
    private readonly Func<string, NearPublicKey, CancellationToken, Task<ulong>> _readNonce;
    private readonly ConcurrentDictionary<(string Account, NearPublicKey Key), KeyState> _keys = new();

    /// <summary>Initializes a manager that reads nonces with <paramref name="client"/>.</summary>
    /// <param name="client">The RPC client.</param>
    public NearNonceManager(NearRpcClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        _readNonce = async (a, k, ct) => (await client.ViewAccessKeyAsync(a, k, ct).ConfigureAwait(false)).Nonce;
    }

    /// <summary>Initializes a manager with a custom nonce reader (for tests or other transports).</summary>
    /// <param name="readNonce">Reads the current nonce of (account, key).</param>
    public NearNonceManager(Func<string, NearPublicKey, CancellationToken, Task<ulong>> readNonce)
    {
        ArgumentNullException.ThrowIfNull(readNonce);
        _readNonce = readNonce;
    }

    /// <summary>Returns the next nonce for (account, key); concurrent callers get distinct, increasing values.</summary>
    /// <param name="accountId">The account.</param>
    /// <param name="key">The access key.</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>The nonce to use.</returns>
    public async Task<ulong> NextAsync(string accountId, NearPublicKey key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(accountId);
        ArgumentNullException.ThrowIfNull(key);
        KeyState state = _keys.GetOrAdd((accountId, key), static _ => new KeyState());
        await state.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (state.Last is null)
            {
                state.Last = await _readNonce(accountId, key, cancellationToken).ConfigureAwait(false);
            }

            state.Last = checked(state.Last.Value + 1);
            return state.Last.Value;
        }
        finally
        {
            state.Gate.Release();
        }
    }

    /// <summary>Makes the next allocation above <paramref name="accessKeyNonce"/> (for example from an InvalidNonce error).</summary>
    /// <param name="accountId">The account.</param>
    /// <param name="key">The access key.</param>
    /// <param name="accessKeyNonce">The chain's current nonce of the key.</param>
    /// <param name="cancellationToken">A cancellation token.</param>
    /// <returns>A task that completes when the state is updated.</returns>
    public async Task ResyncAsync(string accountId, NearPublicKey key, ulong accessKeyNonce, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(accountId);
        ArgumentNullException.ThrowIfNull(key);
        KeyState state = _keys.GetOrAdd((accountId, key), static _ => new KeyState());
        await state.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            state.Last = Math.Max(state.Last ?? 0, accessKeyNonce);
        }
        finally
        {
            state.Gate.Release();
        }
    }

    /// <summary>Forgets the cached nonce so the next allocation reads it from the chain again.</summary>
    /// <param name="accountId">The account.</param>
    /// <param name="key">The access key.</param>
    public void Invalidate(string accountId, NearPublicKey key)
    {
        ArgumentNullException.ThrowIfNull(accountId);
        ArgumentNullException.ThrowIfNull(key);
        if (_keys.TryGetValue((accountId, key), out KeyState? state))
        {
            state.Gate.Wait();
            try
            {
                state.Last = null;
            }
            finally
            {
                state.Gate.Release();
            }
        }
    }

    private sealed class KeyState
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public ulong? Last { get; set; }
    }
}
